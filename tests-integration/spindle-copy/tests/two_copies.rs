//! Two copies of spindle in one binary (issue #10), as when two libraries depend on two
//! versions: each copy's spawn and forkserver children reach that copy, whichever pre-main hook
//! runs first, and each copy names its children differently.

fn triple(x: u32) -> u32 {
    3 * x
}

#[test]
fn each_copy_gets_its_own_children() {
    use spindle::multiprocessing as a;
    use spindle_copy::multiprocessing as b;
    assert_ne!(a::bench::child_variable(), b::bench::child_variable());
    for (ma, mb) in [
        (a::StartMethod::Spawn, b::StartMethod::Spawn),
        (a::StartMethod::Forkserver, b::StartMethod::Forkserver),
    ] {
        let p = a::Builder::new().start_method(ma).target(triple, (5,));
        p.start().unwrap();
        let q = b::Builder::new().start_method(mb).target(triple, (7,));
        q.start().unwrap();
        assert_eq!(p.join().unwrap(), 15, "{ma}");
        assert_eq!(q.join().unwrap(), 21, "{mb}");
    }
}
