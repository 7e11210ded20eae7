//! Hidden tests of `pipe_queue`: written in a later issue.

fn main() {
    forklab_testkit::harness::run(&[])
}
