//! What the CI system a command runs in says about who runs it and at which commit, so a
//! plan names its commit and an apply records who applied it instead of "unknown user".

use std::path::Path;

/// A CI run: the system, who started it and the commit it builds, as the system says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiRun {
    pub system: &'static str,
    pub actor: Option<String>,
    pub commit: Option<String>,
}

/// Each system: the variable that says it runs, then its actor's and its commit's.
const SYSTEMS: [(&str, &str, &str, &str); 6] = [
    (
        "GitHub Actions",
        "GITHUB_ACTIONS",
        "GITHUB_ACTOR",
        "GITHUB_SHA",
    ),
    (
        "GitLab CI",
        "GITLAB_CI",
        "GITLAB_USER_LOGIN",
        "CI_COMMIT_SHA",
    ),
    (
        "Buildkite",
        "BUILDKITE",
        "BUILDKITE_BUILD_CREATOR",
        "BUILDKITE_COMMIT",
    ),
    ("CircleCI", "CIRCLECI", "CIRCLE_USERNAME", "CIRCLE_SHA1"),
    (
        "Azure Pipelines",
        "TF_BUILD",
        "BUILD_REQUESTEDFOR",
        "BUILD_SOURCEVERSION",
    ),
    // Woodpecker, Drone and others that follow the CI_COMMIT_* convention.
    ("CI", "CI_COMMIT_SHA", "CI_COMMIT_AUTHOR", "CI_COMMIT_SHA"),
];

/// The CI run `var` describes (`var` reads an environment variable; empty counts as unset).
pub fn detect_with(var: impl Fn(&str) -> Option<String>) -> Option<CiRun> {
    let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    SYSTEMS
        .iter()
        .find(|(_, marker, _, _)| var(marker).is_some())
        .map(|(system, _, actor, commit)| CiRun {
            system,
            actor: var(actor),
            commit: var(commit),
        })
}

/// The CI run of this process, if it runs in one.
pub fn detect() -> Option<CiRun> {
    detect_with(|name| std::env::var(name).ok())
}

/// Who applies, for the state's record: `octocat via GitHub Actions at commit 1a2b3c4`,
/// or the local user.
pub fn applied_by_with(ci: Option<CiRun>, user: Option<String>) -> String {
    match ci {
        Some(ci) => {
            let mut who = format!(
                "{} via {}",
                ci.actor.as_deref().unwrap_or("someone"),
                ci.system
            );
            if let Some(commit) = &ci.commit {
                who.push_str(&format!(" at commit {}", short(commit)));
            }
            who
        }
        None => user
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "unknown user".into()),
    }
}

pub fn applied_by() -> String {
    applied_by_with(detect(), crate::lock::local_user())
}

/// The commit a configuration in `dir` is at: the CI's, else `git rev-parse HEAD` there
/// (none when git is missing or `dir` is not in a repository).
pub fn commit(dir: &Path) -> Option<String> {
    if let Some(commit) = detect().and_then(|c| c.commit) {
        return Some(commit);
    }
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
        .args(["rev-parse", "HEAD"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let commit = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !commit.is_empty()).then_some(commit)
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn an_apply_in_ci_records_the_actor_and_commit_instead_of_unknown_user() {
        let github = detect_with(env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_ACTOR", "octocat"),
            ("GITHUB_SHA", "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"),
        ]));
        assert_eq!(
            applied_by_with(github, None),
            "octocat via GitHub Actions at commit 1a2b3c4d5e6f"
        );
        let gitlab = detect_with(env(&[
            ("GITLAB_CI", "true"),
            ("GITLAB_USER_LOGIN", "ana"),
            ("CI_COMMIT_SHA", "abc"),
        ]));
        assert_eq!(
            applied_by_with(gitlab, None),
            "ana via GitLab CI at commit abc"
        );
        let other = detect_with(env(&[("CI_COMMIT_SHA", "def"), ("CI_COMMIT_AUTHOR", "bo")]));
        assert_eq!(applied_by_with(other, None), "bo via CI at commit def");
        // Not in CI (an empty variable is unset): the local user.
        assert_eq!(detect_with(env(&[("GITHUB_ACTIONS", "")])), None);
        assert_eq!(applied_by_with(None, Some("ana".into())), "ana");
        assert_eq!(applied_by_with(None, None), "unknown user");
    }
}
