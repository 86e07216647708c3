//! The agent loop: call the model, run the tool calls it asks for (only tools
//! in the allowed set), feed the results back, until the model answers without
//! a tool call or a limit ends the run. Every limit is checked before every
//! step; the deadline and cancellation also interrupt a step in flight.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::error::ProviderError;
use super::providers::Provider;
use super::settings::{DEFAULT_MAX_TOKENS_PER_CALL, ModelPrice};
use super::tools::{ApprovalRequest, Tool, ToolOutcome};
use super::types::{ChatRequest, ContentBlock, Message, Role, Usage};

/// Limits of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_iterations: u32,
    pub max_total_tokens: u64,
    /// `None` = no cost limit (then a model without a price may run).
    pub max_cost_usd: Option<f64>,
    /// `None` = no deadline.
    pub deadline: Option<Instant>,
    pub max_tokens_per_call: u32,
    /// Tool calls of one model answer that are run; the rest are refused.
    pub max_tool_calls_per_turn: u32,
}

impl Limits {
    /// The run's limits from `[limits]`, with the deadline counted from now.
    pub fn from_settings(l: &crate::guard::LimitSettings, max_tokens_per_call: u32) -> Self {
        Limits {
            max_iterations: l.max_iterations,
            max_total_tokens: l.max_tokens_per_task,
            max_cost_usd: Some(l.max_cost_usd),
            deadline: Some(Instant::now() + Duration::from_secs(l.task_deadline_secs)),
            max_tokens_per_call,
            max_tool_calls_per_turn: l.max_tool_calls_per_turn,
        }
    }
}

/// `[limits]` defaults (the one set, [`crate::guard::LimitSettings::default`]).
impl Default for Limits {
    fn default() -> Self {
        Limits::from_settings(
            &crate::guard::LimitSettings::default(),
            DEFAULT_MAX_TOKENS_PER_CALL,
        )
    }
}

/// Why a run ended.
#[derive(Debug)]
pub enum EndReason {
    /// The model answered without asking for a tool.
    Completed,
    MaxIterations,
    MaxTokens,
    MaxCost,
    Deadline,
    Cancelled,
    /// A tool call needs the owner's approval; call [`Agent::resume`] with its result.
    AwaitingApproval {
        tool_use_id: String,
        request: ApprovalRequest,
    },
    /// A cost limit is set but the model has no price in the settings.
    NoPrice {
        model: String,
    },
    ProviderFailed(ProviderError),
}

/// What a run did.
#[derive(Debug)]
pub struct RunOutcome {
    pub end: EndReason,
    /// Text of the last assistant message.
    pub final_text: String,
    /// Totals since the agent was created (across resumes).
    pub usage: Usage,
    pub cost_usd: f64,
    pub iterations: u32,
}

/// One task's agent: provider, model, prompt, tools and limits, plus the
/// counters that the limits are checked against.
#[derive(Debug)]
pub struct Agent {
    provider: Arc<dyn Provider>,
    model: String,
    system: String,
    tools: BTreeMap<String, Arc<dyn Tool>>,
    price: Option<ModelPrice>,
    limits: Limits,
    usage: Usage,
    cost_usd: f64,
    iterations: u32,
    last_text: String,
    /// Tool results of a turn paused for approval (the paused slot is `None`).
    pending: Vec<(String, Option<ContentBlock>)>,
}

enum Step<T> {
    Done(T),
    Ended(EndReason),
}

impl Agent {
    /// `tools` are all tools the caller has; only those named in `allowed` are
    /// offered to the model or ever called.
    pub fn new(
        provider: Arc<dyn Provider>,
        model: impl Into<String>,
        system: impl Into<String>,
        tools: Vec<Arc<dyn Tool>>,
        allowed: &[&str],
        price: Option<ModelPrice>,
        limits: Limits,
    ) -> Self {
        let tools = tools
            .into_iter()
            .filter(|t| allowed.contains(&t.name()))
            .map(|t| (t.name().to_string(), t))
            .collect();
        Agent {
            provider,
            model: model.into(),
            system: system.into(),
            tools,
            price,
            limits,
            usage: Usage::default(),
            cost_usd: 0.0,
            iterations: 0,
            last_text: String::new(),
            pending: Vec::new(),
        }
    }

    /// Names of the tools offered to the model.
    pub fn offered_tools(&self) -> Vec<&str> {
        self.tools.keys().map(String::as_str).collect()
    }

    fn outcome(&self, end: EndReason) -> RunOutcome {
        tracing::info!(
            model = %self.model,
            iterations = self.iterations,
            input_tokens = self.usage.input_tokens,
            output_tokens = self.usage.output_tokens,
            cost_usd = self.cost_usd,
            end = end_name(&end),
            "agent run ended"
        );
        RunOutcome {
            end,
            final_text: self.last_text.clone(),
            usage: self.usage,
            cost_usd: self.cost_usd,
            iterations: self.iterations,
        }
    }

    fn check_limits(&self, cancel: &CancellationToken) -> Option<EndReason> {
        if cancel.is_cancelled() {
            return Some(EndReason::Cancelled);
        }
        if self.limits.deadline.is_some_and(|d| Instant::now() >= d) {
            return Some(EndReason::Deadline);
        }
        if self.usage.total() >= self.limits.max_total_tokens {
            return Some(EndReason::MaxTokens);
        }
        if self.limits.max_cost_usd.is_some_and(|m| self.cost_usd >= m) {
            return Some(EndReason::MaxCost);
        }
        None
    }

    /// Run `fut` unless cancellation or the deadline comes first.
    async fn guarded<T>(
        &self,
        cancel: &CancellationToken,
        fut: impl std::future::Future<Output = T>,
    ) -> Step<T> {
        let deadline = self.limits.deadline;
        tokio::select! {
            biased;
            _ = cancel.cancelled() => Step::Ended(EndReason::Cancelled),
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending::<()>().await,
                }
            } => Step::Ended(EndReason::Deadline),
            v = fut => Step::Done(v),
        }
    }

    /// Run the loop on `history` (which must end with a user message) until it ends.
    pub async fn run(
        &mut self,
        history: &mut Vec<Message>,
        cancel: &CancellationToken,
    ) -> RunOutcome {
        if self.limits.max_cost_usd.is_some() && self.price.is_none() {
            return self.outcome(EndReason::NoPrice {
                model: self.model.clone(),
            });
        }
        loop {
            if let Some(end) = self.check_limits(cancel) {
                return self.outcome(end);
            }
            if self.iterations >= self.limits.max_iterations {
                return self.outcome(EndReason::MaxIterations);
            }
            self.iterations += 1;
            let remaining = self.limits.max_total_tokens - self.usage.total();
            let request = ChatRequest {
                model: self.model.clone(),
                system: self.system.clone(),
                messages: history.clone(),
                tools: self.tools.values().map(|t| t.definition()).collect(),
                max_tokens: self
                    .limits
                    .max_tokens_per_call
                    .min(u32::try_from(remaining).unwrap_or(u32::MAX))
                    .max(1),
            };
            let provider = self.provider.clone();
            let response = match self
                .guarded(cancel, provider.complete(&request, cancel))
                .await
            {
                Step::Ended(end) => return self.outcome(end),
                Step::Done(Err(ProviderError::Cancelled { .. })) => {
                    return self.outcome(EndReason::Cancelled);
                }
                Step::Done(Err(e)) => return self.outcome(EndReason::ProviderFailed(e)),
                Step::Done(Ok(r)) => r,
            };
            self.usage.input_tokens = self
                .usage
                .input_tokens
                .saturating_add(response.usage.input_tokens);
            self.usage.output_tokens = self
                .usage
                .output_tokens
                .saturating_add(response.usage.output_tokens);
            if let Some(p) = &self.price {
                self.cost_usd +=
                    p.cost_usd(response.usage.input_tokens, response.usage.output_tokens);
            }
            self.last_text = response.text();
            tracing::debug!(
                iteration = self.iterations,
                input_tokens = response.usage.input_tokens,
                output_tokens = response.usage.output_tokens,
                stop = ?response.stop_reason,
                "model answered"
            );
            let calls: Vec<(String, String, serde_json::Value)> = response
                .tool_uses()
                .map(|(id, name, input)| (id.to_string(), name.to_string(), input.clone()))
                .collect();
            history.push(Message {
                role: Role::Assistant,
                content: response.content,
            });
            if calls.is_empty() {
                return self.outcome(EndReason::Completed);
            }
            if let Some(end) = self.check_limits(cancel) {
                return self.outcome(end);
            }
            if let Some(end) = self.run_tools(calls, history, cancel).await {
                return self.outcome(end);
            }
        }
    }

    /// Run the calls of one turn; `Some` ends the run (pause or limit).
    async fn run_tools(
        &mut self,
        calls: Vec<(String, String, serde_json::Value)>,
        history: &mut Vec<Message>,
        cancel: &CancellationToken,
    ) -> Option<EndReason> {
        let mut results: Vec<(String, Option<ContentBlock>)> = Vec::new();
        let mut paused: Option<(String, ApprovalRequest)> = None;
        let cap = usize::try_from(self.limits.max_tool_calls_per_turn).unwrap_or(usize::MAX);
        for (n, (id, name, input)) in calls.into_iter().enumerate() {
            if n >= cap {
                // One answer may not flood the workspace or the sandbox.
                results.push((
                    id.clone(),
                    Some(ContentBlock::ToolResult {
                        tool_use_id: id,
                        content: format!(
                            "not run: at most {cap} tool calls are run per answer; ask again for the rest"
                        ),
                        is_error: true,
                    }),
                ));
                continue;
            }
            if paused.is_some() {
                results.push((
                    id.clone(),
                    Some(ContentBlock::ToolResult {
                        tool_use_id: id,
                        content: "not run: an earlier call in this turn awaits approval".into(),
                        is_error: true,
                    }),
                ));
                continue;
            }
            let outcome = match self.tools.get(&name).cloned() {
                None => ToolOutcome::Denied(format!("the tool `{name}` is not available")),
                Some(tool) => match self.guarded(cancel, tool.call(input)).await {
                    Step::Ended(end) => return Some(end),
                    Step::Done(o) => o,
                },
            };
            tracing::debug!(tool = %name, outcome = outcome_name(&outcome), "tool called");
            let (content, is_error) = match outcome {
                ToolOutcome::Output(s) => (s, false),
                ToolOutcome::Failed(s) => (s, true),
                ToolOutcome::Denied(r) => (format!("denied: {r}"), true),
                ToolOutcome::NeedsApproval(req) => {
                    paused = Some((id.clone(), req));
                    results.push((id, None));
                    continue;
                }
            };
            results.push((
                id.clone(),
                Some(ContentBlock::ToolResult {
                    tool_use_id: id,
                    content,
                    is_error,
                }),
            ));
        }
        if let Some((tool_use_id, request)) = paused {
            self.pending = results;
            return Some(EndReason::AwaitingApproval {
                tool_use_id,
                request,
            });
        }
        history.push(Message {
            role: Role::User,
            content: results.into_iter().filter_map(|(_, b)| b).collect(),
        });
        None
    }

    /// Continue a run paused by [`EndReason::AwaitingApproval`], giving the
    /// paused call's result (the command's output, or the denial).
    pub async fn resume(
        &mut self,
        history: &mut Vec<Message>,
        tool_use_id: &str,
        result: ToolOutcome,
        cancel: &CancellationToken,
    ) -> RunOutcome {
        let (content, is_error) = match result {
            ToolOutcome::Output(s) => (s, false),
            ToolOutcome::Failed(s) => (s, true),
            ToolOutcome::Denied(r) => (format!("denied: {r}"), true),
            ToolOutcome::NeedsApproval(_) => ("approval is still pending".to_string(), true),
        };
        let pending = std::mem::take(&mut self.pending);
        let blocks = pending
            .into_iter()
            .map(|(id, b)| {
                b.unwrap_or_else(|| ContentBlock::ToolResult {
                    tool_use_id: id.clone(),
                    content: if id == tool_use_id {
                        content.clone()
                    } else {
                        "not run".to_string()
                    },
                    is_error: is_error || id != tool_use_id,
                })
            })
            .collect();
        history.push(Message {
            role: Role::User,
            content: blocks,
        });
        self.run(history, cancel).await
    }
}

fn end_name(e: &EndReason) -> &'static str {
    match e {
        EndReason::Completed => "completed",
        EndReason::MaxIterations => "max_iterations",
        EndReason::MaxTokens => "max_tokens",
        EndReason::MaxCost => "max_cost",
        EndReason::Deadline => "deadline",
        EndReason::Cancelled => "cancelled",
        EndReason::AwaitingApproval { .. } => "awaiting_approval",
        EndReason::NoPrice { .. } => "no_price",
        EndReason::ProviderFailed(_) => "provider_failed",
    }
}

fn outcome_name(o: &ToolOutcome) -> &'static str {
    match o {
        ToolOutcome::Output(_) => "output",
        ToolOutcome::Failed(_) => "failed",
        ToolOutcome::Denied(_) => "denied",
        ToolOutcome::NeedsApproval(_) => "needs_approval",
    }
}
