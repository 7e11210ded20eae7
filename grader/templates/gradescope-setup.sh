#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image; the bundle
# is unpacked in /autograder/source. It installs the Rust toolchain, builds the grader
# and pre-builds the course's dependencies into the scratch target directory that every
# submission's grading then shares.
set -euo pipefail
cd /autograder/source
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends ca-certificates curl build-essential
curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
    | sh -s -- -y --profile minimal --default-toolchain {toolchain}
. "$HOME/.cargo/env"
cargo build --release -p grader
# Grading the pristine stubs once builds every dependency of the hidden tests.
./target/release/grader --course /autograder/source --scratch /autograder/scratch \
    --format json > /dev/null
