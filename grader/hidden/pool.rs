//! Hidden tests of `pool`: written in a later issue.

fn main() {
    forklab_testkit::harness::run(&[])
}
