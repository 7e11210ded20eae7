//! Visible tests of `value_array`: they are the specification. Run
//! `cargo test -p value_array`.

use std::time::Duration;

use forklab_testkit::{Exit, SharedSlots, fork_child, wait_child};
use value_array::{AnyArray, AnyValue, Array, RawArray, RawValue, ShmError, TypeCode, Value};

/// Forks a child running `body` and waits for it to end well.
fn in_child(body: impl FnOnce()) {
    let child = fork_child(body);
    assert_eq!(
        wait_child(child, Duration::from_secs(10)),
        Some(Exit::Code(0)),
        "the child failed or did not end"
    );
}

#[test]
fn a_value_holds_its_initial_value_and_typecode() {
    let v = Value::new(7_i32).unwrap();
    assert_eq!(v.get(), 7);
    assert_eq!(v.typecode(), 'i');
    v.set(-3);
    assert_eq!(v.get(), -3);
    let d = Value::new(0.25_f64).unwrap();
    assert_eq!((d.get(), d.typecode()), (0.25, 'd'));
}

#[test]
fn a_childs_write_to_a_value_is_seen_by_the_parent() {
    let v = Value::new(0_i32).unwrap();
    in_child(|| v.set(42));
    assert_eq!(v.get(), 42, "the memory is not shared (MAP_PRIVATE?)");
}

#[test]
fn update_from_two_processes_loses_no_increment() {
    let v = Value::new(0_i32).unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            fork_child(|| {
                for _ in 0..2000 {
                    v.update(|x| x + 1);
                }
            })
        })
        .collect();
    for child in children {
        assert_eq!(
            wait_child(child, Duration::from_secs(10)),
            Some(Exit::Code(0))
        );
    }
    assert_eq!(v.get(), 4000);
}

#[test]
fn the_guard_holds_the_lock_for_a_read_modify_write() {
    let v = Value::new(10_i32).unwrap();
    in_child(|| {
        let mut guard = v.get_lock();
        let x = guard.get();
        guard.set(x * 2);
    });
    assert_eq!(v.update(|x| x + 1), 21);
    assert_eq!(v.get(), 21, "the guard released the lock when dropped");
}

#[test]
fn a_new_array_is_zeros_of_the_given_length() {
    let a = Array::<f64>::new(4).unwrap();
    assert_eq!(a.len(), 4);
    assert!(!a.is_empty());
    assert_eq!(a.typecode(), 'd');
    assert_eq!(a.to_vec(), vec![0.0; 4]);
}

#[test]
fn an_array_can_be_built_from_items() {
    let a = Array::from_slice(b"hola").unwrap();
    assert_eq!(a.typecode(), 'c');
    assert_eq!(a.get(1), Ok(b'o'));
    a.set(0, b'H').unwrap();
    assert_eq!(a.to_vec(), b"Hola".to_vec());
}

#[test]
fn an_index_out_of_range_is_an_error_not_a_panic() {
    let a = Array::from_slice(&[1, 2, 3]).unwrap();
    assert_eq!(
        a.get(3),
        Err(ShmError::IndexOutOfRange { index: 3, len: 3 })
    );
    assert_eq!(
        a.set(7, 0),
        Err(ShmError::IndexOutOfRange { index: 7, len: 3 })
    );
    assert_eq!(a.to_vec(), vec![1, 2, 3]);
}

#[test]
fn children_fill_disjoint_parts_of_one_array() {
    let a = Array::<i32>::new(30).unwrap();
    let children: Vec<_> = (0..3)
        .map(|k| {
            let a = &a;
            fork_child(move || {
                for i in k * 10..(k + 1) * 10 {
                    a.set(i, i as i32 * 100).unwrap();
                }
            })
        })
        .collect();
    for child in children {
        assert_eq!(
            wait_child(child, Duration::from_secs(10)),
            Some(Exit::Code(0))
        );
    }
    let expected: Vec<i32> = (0..30).map(|i| i * 100).collect();
    assert_eq!(a.to_vec(), expected);
}

#[test]
fn update_slice_changes_a_range_under_the_lock() {
    let a = Array::from_slice(&[1, 2, 3, 4]).unwrap();
    in_child(|| {
        let sum = a
            .update_slice(1..3, |part| {
                part.iter_mut().for_each(|x| *x *= 10);
                part.iter().sum::<i32>()
            })
            .unwrap();
        assert_eq!(sum, 50);
    });
    assert_eq!(a.to_vec(), vec![1, 20, 30, 4]);
    let out = a.update_slice(2..5, |_| ());
    assert_eq!(
        out,
        Err(ShmError::RangeOutOfRange {
            start: 2,
            end: 5,
            len: 4
        })
    );
}

#[test]
fn raw_values_and_arrays_are_shared_without_a_lock() {
    let v = RawValue::new(1.5_f64).unwrap();
    let a = RawArray::<u8>::new(3).unwrap();
    in_child(|| {
        v.set(v.get() * 2.0);
        a.set(2, b'z').unwrap();
    });
    assert_eq!(v.get(), 3.0);
    assert_eq!(a.to_vec(), vec![0, 0, b'z']);
    assert_eq!((v.typecode(), a.typecode(), a.len()), ('d', 'c', 3));
}

#[test]
fn typecodes_are_pythons() {
    assert_eq!((i32::CODE, f64::CODE, u8::CODE), ('i', 'd', 'c'));
    assert!(matches!(AnyValue::from_typecode('i'), Ok(AnyValue::Int(_))));
    assert!(matches!(
        AnyValue::from_typecode('d'),
        Ok(AnyValue::Double(_))
    ));
    assert!(matches!(
        AnyValue::from_typecode('c'),
        Ok(AnyValue::Char(_))
    ));
    assert_eq!(
        AnyValue::from_typecode('x').err(),
        Some(ShmError::UnknownTypecode('x'))
    );
    let a = AnyArray::from_typecode('d', 5).unwrap();
    assert_eq!((a.typecode(), a.len()), ('d', 5));
    assert_eq!(
        AnyArray::from_typecode('f', 5).err(),
        Some(ShmError::UnknownTypecode('f'))
    );
}

#[test]
fn a_value_made_after_fork_is_not_shared() {
    let made = SharedSlots::new(1);
    let before = Value::new(0_i32).unwrap();
    let child = fork_child(|| {
        while made.get(0) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let after = Value::new(0_i32).unwrap(); // the child's own, made after the fork
        after.set(99);
        before.set(1);
    });
    let after = Value::new(0_i32).unwrap(); // the parent's own, made after the fork
    made.set(0, 1);
    assert_eq!(
        wait_child(child, Duration::from_secs(10)),
        Some(Exit::Code(0))
    );
    assert_eq!(before.get(), 1, "a value made before the fork is shared");
    assert_eq!(
        after.get(),
        0,
        "a value made after the fork is the parent's alone"
    );
}
