//! Hidden tests of `value_array`: written in a later issue.

fn main() {
    forklab_testkit::harness::run(&[])
}
