//! Tests of the run loop, the filter and the row model.

use super::*;

fn group(id: &str, names: &[&str]) -> Group {
    let mut g = Group::new(id, &format!("title of {id}"));
    for (i, name) in names.iter().enumerate() {
        let run = |_| Err(NotMeasured::Skipped("test".to_string()));
        g = g.contender(if i == 0 {
            Contender::subject(name, run)
        } else {
            Contender::peer(name, run)
        });
    }
    g
}

fn picked(filter: Option<&str>) -> Vec<(String, Vec<String>)> {
    let opts = Options {
        filter: filter.map(str::to_string),
        ..Options::default()
    };
    let groups = vec![
        group("round-trip", &["spindle", "crossbeam", "CPython"]),
        group("map", &["spindle", "rayon"]),
    ];
    select(groups, &opts)
        .into_iter()
        .map(|g| (g.id, g.contenders.into_iter().map(|c| c.name).collect()))
        .collect()
}

#[test]
fn no_filter_keeps_everything() {
    assert_eq!(picked(None).len(), 2);
}

#[test]
fn a_workload_filter_keeps_its_whole_group() {
    assert_eq!(
        picked(Some("MAP")),
        vec![(
            "map".to_string(),
            vec!["spindle".to_string(), "rayon".to_string()]
        )]
    );
}

#[test]
fn a_contender_filter_keeps_spindle_beside_it() {
    assert_eq!(
        picked(Some("cpython")),
        vec![(
            "round-trip".to_string(),
            vec!["spindle".to_string(), "CPython".to_string()]
        )]
    );
}

#[test]
fn a_filter_matching_nothing_keeps_nothing() {
    assert!(picked(Some("no such thing")).is_empty());
}

#[test]
fn a_panicking_contender_is_a_failed_row() {
    let run: Runner = Box::new(|_| panic!("pool exploded"));
    let out = guarded(run, Progress { enabled: false }, Duration::from_secs(30));
    assert_eq!(
        out,
        Err(NotMeasured::Failed("panicked: pool exploded".to_string()))
    );
}

#[test]
fn a_hung_contender_is_abandoned_after_the_timeout() {
    let (_keep, rx) = crossbeam_channel::bounded::<()>(0);
    let run: Runner = Box::new(move |_| {
        // Blocks until the test ends (the sender is dropped then).
        let _ = rx.recv();
        Err(NotMeasured::Skipped(
            "unreachable while the test runs".to_string(),
        ))
    });
    let out = guarded(run, Progress { enabled: false }, Duration::from_millis(50));
    assert!(
        matches!(&out, Err(NotMeasured::Failed(m)) if m.contains("abandoned")),
        "{out:?}"
    );
}

#[test]
fn a_measured_contender_comes_back_whole() {
    let run: Runner = Box::new(|_| Ok(Measurement::times(3, vec![Duration::from_millis(1)])));
    let out = guarded(run, Progress { enabled: false }, Duration::from_secs(30));
    assert_eq!(
        out,
        Ok(Measurement::times(3, vec![Duration::from_millis(1)]))
    );
}

#[test]
fn plan_follows_mode_and_override() {
    let full = Options::default().plan();
    assert_eq!(
        (full.warmup, full.reps, full.min_time),
        (1, 10, Duration::from_secs(1))
    );
    assert_eq!(full.max_reps, 1000);
    assert_eq!(
        Options {
            quick: true,
            ..Options::default()
        }
        .plan()
        .reps,
        5
    );
    assert_eq!(
        Options {
            reps: Some(3),
            ..Options::default()
        }
        .plan()
        .reps,
        3
    );
    assert_eq!(
        Options {
            reps: Some(0),
            ..Options::default()
        }
        .plan()
        .reps,
        1
    );
}

#[test]
fn a_board_with_no_groups_runs_nothing() {
    let opts = Options {
        filter: Some("no such thing".into()),
        progress: false,
        ..Options::default()
    };
    let board = run(&opts);
    assert!(board.groups.is_empty());
    assert_eq!(board.workers, 2);
}

#[test]
fn a_contender_filter_keeps_every_subject_and_reference_row() {
    let skip = |_| Err(NotMeasured::Skipped("test".to_string()));
    let g = Group::new("process-start", "starts")
        .contender(Contender::subject("spindle fork", skip))
        .contender(Contender::peer("CPython fork", skip).versus("spindle fork"))
        .contender(Contender::subject("spindle spawn", skip))
        .contender(Contender::peer("CPython spawn", skip).versus("spindle spawn"))
        .contender(Contender::reference("round trip", skip));
    let opts = Options {
        filter: Some("cpython spawn".into()),
        ..Options::default()
    };
    let kept: Vec<String> = select(vec![g], &opts)
        .into_iter()
        .flat_map(|g| g.contenders.into_iter().map(|c| c.name))
        .collect();
    assert_eq!(
        kept,
        [
            "spindle fork",
            "spindle spawn",
            "CPython spawn",
            "round trip"
        ]
    );
}

#[test]
fn a_measurement_in_the_wrong_unit_is_a_failed_row() {
    let bytes = Ok(Measurement::bytes(1, vec![4096]));
    assert!(matches!(
        in_unit(bytes.clone(), Unit::Time),
        Err(NotMeasured::Failed(m)) if m.contains("Bytes")
    ));
    assert_eq!(in_unit(bytes.clone(), Unit::Bytes), bytes);
    let skipped = Err(NotMeasured::Skipped("no python3".to_string()));
    assert_eq!(in_unit(skipped.clone(), Unit::Bytes), skipped);
}

#[test]
fn a_contender_on_the_board_thread_runs_there_and_a_panic_is_a_failed_row() {
    let board = std::thread::current().id();
    let run: Runner = Box::new(move |_| {
        assert_eq!(
            std::thread::current().id(),
            board,
            "not on the board's thread"
        );
        Ok(Measurement::times(1, vec![Duration::from_millis(1)]))
    });
    let quiet = Progress { enabled: false };
    let out = on_this_thread(run, quiet, Duration::from_secs(30), "here");
    assert_eq!(
        out,
        Ok(Measurement::times(1, vec![Duration::from_millis(1)]))
    );
    let run: Runner = Box::new(|_| panic!("pool exploded"));
    let out = on_this_thread(run, quiet, Duration::from_secs(30), "boom");
    assert_eq!(
        out,
        Err(NotMeasured::Failed("panicked: pool exploded".to_string()))
    );
}
