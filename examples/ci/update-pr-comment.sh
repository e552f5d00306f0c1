#!/usr/bin/env bash
# Posts a tether plan (markdown) as a pull-request comment, or updates in place the comment
# posted before for the same org, so a pull request keeps one plan comment per org however
# often it is pushed. tether's markdown starts with a hidden marker line,
# `<!-- tether:plan org=NAME -->`: the comment whose body starts with it is the one updated.
#
#   tether plan tether/ --format markdown > plan.md      # or: tether show --format markdown FILE
#   examples/ci/update-pr-comment.sh plan.md PR_NUMBER [OWNER/REPO]
#
# Needs the GitHub CLI (`gh`) with GH_TOKEN allowed to write pull requests; OWNER/REPO
# defaults to $GITHUB_REPOSITORY (set in GitHub Actions).
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 PLAN.md PR_NUMBER [OWNER/REPO]" >&2
  exit 2
fi
plan=$1
pr=$2
repo=${3:-${GITHUB_REPOSITORY:-}}
if [ -z "$repo" ]; then
  echo "name the repository as OWNER/REPO, or set GITHUB_REPOSITORY" >&2
  exit 2
fi

marker=$(head -n 1 "$plan")
case "$marker" in
  "<!-- tether:plan org="*" -->") ;;
  *)
    echo "$plan does not start with tether's marker line; write it with" \
         "\`tether plan --format markdown\` or \`tether show --format markdown\`" >&2
    exit 1
    ;;
esac

# The last comment of this org's plan, if there is one.
id=$(MARKER="$marker" gh api --paginate "repos/$repo/issues/$pr/comments" \
       --jq '.[] | select(.body | startswith(env.MARKER)) | .id' | tail -n 1)
if [ -n "$id" ]; then
  gh api --method PATCH "repos/$repo/issues/comments/$id" -F "body=@$plan" > /dev/null
  echo "updated the plan comment $id on #$pr"
else
  gh api --method POST "repos/$repo/issues/$pr/comments" -F "body=@$plan" > /dev/null
  echo "posted the plan as a new comment on #$pr"
fi
