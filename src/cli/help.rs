//! The `--help` texts beyond the flags: examples for the everyday commands and the
//! environment variables tether reads.

pub const PLAN_EXAMPLES: &str = "Examples:
  tether plan path/to/config                          # what apply would change
  tether plan path/to/config --format markdown        # for a pull-request comment
  tether plan path/to/config --out tether.plan        # save it; `tether apply tether.plan` later
  tether plan path/to/config --detailed-exitcode      # exit 2 when there are changes
  tether plan path/to/config --user ann@example.com   # only this rep's data";

pub const APPLY_EXAMPLES: &str = "Examples:
  tether apply path/to/config                         # plan, confirm, sync
  tether apply path/to/config --auto-approve          # in CI, after merge
  tether apply tether.plan                            # the plan saved by `plan --out`
  tether apply path/to/config --auto-approve --lock-timeout 5m";

pub const RUN_EXAMPLES: &str = "Examples:
  tether run path/to/config --interval 10m            # keep syncing the last applied settings
  tether run path/to/config --once                    # one cycle, then exit
  tether run /etc/tether --state /var/lib/tether/state.db --listen 127.0.0.1:9090";

/// The environment variables tether reads, for the top-level `--help`.
pub const ENVIRONMENT: &str = "Environment:
  TETHER_CONFIG    the configuration file or directory when a command is given none
  TETHER_STATE     the state (file or postgres:// URL) when --state is not given
  TETHER_LOG_FILE  append the log to this file when --log-file is not given
  RUST_LOG         log level and filters (e.g. info, tether=debug)
  PGPASSWORD       the password of a Postgres state
  GITHUB_ACTOR, GITHUB_SHA (in GitHub Actions; GitLab CI, Buildkite, CircleCI, Azure
                   Pipelines and CI_COMMIT_* likewise): who applied, at which commit
  ${env:NAME}      the configuration's secrets may name any variable";
