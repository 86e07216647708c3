//! Here-doc bodies are read after the line that names them; this puts each body into its
//! redirection once the whole input is parsed.

use crate::guard::ast::{Command, Compound, Part, Pipeline, Redirect, Script, Word};

pub(super) fn fill_script(s: &mut Script, bodies: &mut Vec<Option<Word>>) {
    for ao in &mut s.items {
        fill_pipeline(&mut ao.first, bodies);
        for p in &mut ao.rest {
            fill_pipeline(p, bodies);
        }
    }
}

fn fill_pipeline(p: &mut Pipeline, bodies: &mut Vec<Option<Word>>) {
    for c in &mut p.cmds {
        fill_command(c, bodies);
    }
}

fn fill_command(c: &mut Command, bodies: &mut Vec<Option<Word>>) {
    match c {
        Command::Simple(sc) => {
            for a in &mut sc.assigns {
                fill_word(&mut a.value, bodies);
            }
            for w in &mut sc.words {
                fill_word(w, bodies);
            }
            fill_redirs(&mut sc.redirs, bodies);
        }
        Command::Compound(comp, redirs) => {
            match comp {
                Compound::Subshell(s) | Compound::Brace(s) => fill_script(s, bodies),
                Compound::If(parts) => parts.iter_mut().for_each(|s| fill_script(s, bodies)),
                Compound::Loop(a, b) => {
                    fill_script(a, bodies);
                    fill_script(b, bodies);
                }
                Compound::For { words, body, .. } => {
                    words.iter_mut().for_each(|w| fill_word(w, bodies));
                    fill_script(body, bodies);
                }
                Compound::Case { word, arms } => {
                    fill_word(word, bodies);
                    for (pats, body) in arms {
                        pats.iter_mut().for_each(|w| fill_word(w, bodies));
                        fill_script(body, bodies);
                    }
                }
                Compound::Arith(nested) => nested.iter_mut().for_each(|s| fill_script(s, bodies)),
            }
            fill_redirs(redirs, bodies);
        }
        Command::FunctionDef { body, .. } => fill_command(body, bodies),
    }
}

fn fill_redirs(redirs: &mut [Redirect], bodies: &mut Vec<Option<Word>>) {
    for r in redirs {
        if let Some(idx) = r.heredoc
            && let Some(body) = bodies.get_mut(idx).and_then(Option::take)
        {
            r.target = body;
        }
        fill_word(&mut r.target, bodies);
    }
}

fn fill_word(w: &mut Word, bodies: &mut Vec<Option<Word>>) {
    for p in &mut w.parts {
        match p {
            Part::Param { nested, .. } | Part::Arith(nested) => {
                nested.iter_mut().for_each(|s| fill_script(s, bodies))
            }
            Part::Subst { script, .. } | Part::ProcSubst(script) => fill_script(script, bodies),
            Part::Lit { .. } | Part::Tilde(_) => {}
        }
    }
}
