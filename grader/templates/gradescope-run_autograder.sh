#!/usr/bin/env bash
# Gradescope runs this for each submission: it grades the checkout in
# /autograder/submission (or in its one top-level folder) with the hidden tests and
# writes /autograder/results/results.json. If the grader itself fails, the results
# still say so, with the end of its log.
set -uo pipefail
AUTOGRADER="${AUTOGRADER:-/autograder}"
SOURCE="$AUTOGRADER/source"
GRADER="${GRADER:-$SOURCE/target/release/grader}"
SCRATCH="${SCRATCH:-$AUTOGRADER/scratch}"
RESULTS="$AUTOGRADER/results"
mkdir -p "$RESULTS"
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

SUBMISSION="$AUTOGRADER/submission"
if [ ! -d "$SUBMISSION/exercises" ]; then
    for folder in "$SUBMISSION"/*/; do
        if [ -d "$folder/exercises" ]; then SUBMISSION="$folder"; break; fi
    done
fi

if "$GRADER" --course "$SOURCE" --scratch "$SCRATCH" \
    --submission "$SUBMISSION" --format gradescope \
    > "$RESULTS/results.json.part" 2> "$RESULTS/grader.log"; then
    mv "$RESULTS/results.json.part" "$RESULTS/results.json"
else
    log=$(tail -n 20 "$RESULTS/grader.log" | tr -d '\000-\010\013-\037' | tr '\t' ' ' \
        | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' | awk '{ printf "%s\\n", $0 }')
    printf '{"score": 0, "output": "The autograder could not grade this submission; tell your instructor.\\n\\n%s", "tests": []}\n' \
        "$log" > "$RESULTS/results.json"
fi
