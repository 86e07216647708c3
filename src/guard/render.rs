//! Text and JSON renderings of a [`Verdict`] for `coworkctl guard check`.

use super::verdict::Verdict;

/// `block\trule: builtin:rm-root\treason: ...`, then one indented line per segment when there are
/// several. Control characters are shown escaped so a hostile command cannot forge lines.
pub fn render_text(v: &Verdict) -> String {
    let mut s = format!(
        "{}\trule: {}\treason: {}\n",
        v.decision,
        clean(&v.rule),
        clean(&v.reason)
    );
    if v.segments.len() > 1 {
        for seg in &v.segments {
            s.push_str(&format!(
                "  {}\t{}\t({}: {})\n",
                seg.decision,
                clean(&seg.command),
                clean(&seg.rule),
                clean(&seg.reason)
            ));
        }
    }
    s
}

/// The verdict as one JSON object: `{"decision":"block","rule":..,"reason":..,"segments":[..]}`.
pub fn render_json(v: &Verdict) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| {
        format!(
            "{{\"decision\":\"{}\",\"error\":{:?}}}",
            v.decision,
            e.to_string()
        )
    })
}

fn clean(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}
