//! The `score` and `report` commands of the inference server's binary, as
//! a ScoringJob's pods run them: the plan comes from the environment, and
//! the outcome is one `{"aimassScoring": ...}` line and the exit code.

use aimass_crds::scoring::{EXIT_REFUSED, PLAN_ENV, ScoringLine, ScoringPlan};

use crate::Error;

/// The largest plan read from the environment.
const PLAN_LIMIT: usize = 1 << 20;

/// A batch command.
#[derive(Debug, clap::Parser)]
#[command(
    name = "aimass-inference-server",
    about = "Batch scoring for a ScoringJob"
)]
pub enum Command {
    /// Scores one shard of the data set with every version of the plan and
    /// writes its outputs and tallies.
    Score {
        /// The shard (the Indexed Job's completion index).
        #[arg(long, env = "JOB_COMPLETION_INDEX")]
        shard: u32,
        /// The plan, as JSON.
        #[arg(long, env = PLAN_ENV, hide_env_values = true)]
        plan: String,
    },
    /// Merges the shards' tallies into the report, writes `report.json` and
    /// prints it.
    Report {
        /// The plan, as JSON.
        #[arg(long, env = PLAN_ENV, hide_env_values = true)]
        plan: String,
    },
}

impl Command {
    /// Whether the first argument names a batch command.
    pub fn named(first: Option<&str>) -> bool {
        matches!(first, Some("score" | "report"))
    }

    /// Runs the command; returns the process's exit code.
    pub async fn run(self) -> i32 {
        let (Self::Score { plan, .. } | Self::Report { plan }) = &self;
        let plan = match parse(plan) {
            Ok(plan) => plan,
            Err(e) => return fail(&e),
        };
        let outcome = match self {
            Self::Score { shard, .. } if shard >= plan.shards => Err(Error::Data(format!(
                "shard {shard} is not below the plan's {} shards",
                plan.shards
            ))),
            Self::Score { shard, .. } => crate::score_shard(&plan, shard).await.map(|()| None),
            Self::Report { .. } => crate::report(&plan).await.map(Some),
        };
        match outcome {
            Ok(Some(report)) => {
                println!("{}", ScoringLine::Report(Box::new(report)).to_line());
                0
            }
            Ok(None) => 0,
            Err(e) => fail(&e),
        }
    }
}

fn parse(plan: &str) -> Result<ScoringPlan, Error> {
    if plan.len() > PLAN_LIMIT {
        return Err(Error::invalid_spec("the scoring plan is too large"));
    }
    serde_json::from_str(plan)
        .map_err(|e| Error::invalid_spec(format!("the scoring plan does not parse: {e}")))
}

/// Prints why, and returns the exit code: [`EXIT_REFUSED`] when retrying
/// cannot help.
fn fail(error: &Error) -> i32 {
    let (reason, code) = match error {
        Error::Refused { reason, .. } => (*reason, EXIT_REFUSED),
        Error::Storage(_) => ("StorageUnavailable", 1),
        Error::Engine(_) | Error::Data(_) => ("ScoringFailed", 1),
    };
    println!(
        "{}",
        ScoringLine::Failed {
            reason: reason.to_owned(),
            message: error.to_string(),
        }
        .to_line()
    );
    code
}
