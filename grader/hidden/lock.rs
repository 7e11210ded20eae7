//! Hidden tests of `lock`: written in a later issue.

fn main() {
    forklab_testkit::harness::run(&[])
}
