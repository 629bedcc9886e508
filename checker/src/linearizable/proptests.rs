//! Property tests: model-generated histories pass, corrupted ones fail, and the optimised search
//! agrees with a brute-force search on small arbitrary histories.

use proptest::prelude::*;

use super::search::{self, return_time, step, State};
use super::tests::{check, op, read};
use super::*;
use crate::history::{OkResult, Op, OpFn, Outcome};

/// One generated op: `(kind, pick, before_ms, after_ms, outcome, client)`.
type Step = (u8, u8, u64, u64, u8, u32);

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (0u8..4, any::<u8>(), 0u64..30, 0u64..30, 0u8..10, 0u32..5),
        1..40,
    )
}

/// Runs `steps` against a sequential register: op `i` takes effect at `20 * (i + 2)` ms, inside
/// its interval `[point - before, point + after]`, so the history is linearizable by construction.
/// Outcomes: 0 = fail (not applied), 1 = info applied, 2 = info not applied, else ok.
fn run_model(steps: &[Step]) -> Vec<Op> {
    let mut state: Option<u64> = None;
    let mut written: Vec<u64> = Vec::new();
    let mut fresh = 0u64;
    let mut ops = Vec::new();
    for (i, &(kind, pick, before, after, outcome, client)) in steps.iter().enumerate() {
        let point = 20 * (i as u64 + 2);
        let f = match kind {
            0 => OpFn::Read,
            1 | 2 => {
                fresh += 1;
                written.push(fresh);
                if kind == 1 {
                    OpFn::Write(fresh)
                } else {
                    let expect = match pick % 3 {
                        0 => state,
                        1 => None,
                        _ => written.get(pick as usize % written.len()).copied(),
                    };
                    OpFn::Cas { expect, new: fresh }
                }
            }
            // Half the deletes compare: against the current value or one written earlier.
            _ if pick % 2 == 1 && !written.is_empty() => {
                let expect = if pick % 4 == 1 { state.unwrap_or(written[0]) } else { written[pick as usize % written.len()] };
                OpFn::DeleteCas { expect }
            }
            _ => OpFn::Delete,
        };
        let applied = match &f {
            OpFn::Read => (state, OkResult::Read(state)),
            OpFn::Write(v) => (Some(*v), OkResult::Done),
            OpFn::Delete => (None, OkResult::Done),
            OpFn::Cas { expect, new } if *expect == state => (Some(*new), OkResult::Cas(true)),
            OpFn::Cas { .. } => (state, OkResult::Cas(false)),
            OpFn::DeleteCas { expect } if state.is_none() || state == Some(*expect) => (None, OkResult::Cas(true)),
            OpFn::DeleteCas { .. } => (state, OkResult::Cas(false)),
        };
        let outcome = match outcome {
            0 => Outcome::Fail,
            1 => {
                state = applied.0;
                Outcome::Info
            }
            2 => Outcome::Info,
            _ => {
                state = applied.0;
                Outcome::Ok(applied.1)
            }
        };
        ops.push(op(i, client, f, point - before, point + after, outcome));
    }
    ops
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn histories_from_a_sequential_model_are_linearizable(steps in steps()) {
        let ops = run_model(&steps);
        let verdict = check(&ops);
        prop_assert!(verdict.is_linearizable(), "{verdict}\n{ops:#?}");
    }

    #[test]
    fn read_of_a_never_written_value_is_not_linearizable(
        mut steps in steps(),
        which in any::<prop::sample::Index>(),
    ) {
        steps.push((0, 0, 0, 0, 9, 0)); // guarantee at least one ok read
        let mut ops = run_model(&steps);
        let reads: Vec<usize> = ops
            .iter()
            .filter(|o| matches!(o.outcome, Outcome::Ok(OkResult::Read(_))))
            .map(|o| o.id)
            .collect();
        let target = reads[which.index(reads.len())];
        ops[target].outcome = read(Some(1_000_000));
        match check(&ops) {
            Verdict::NotLinearizable(v) => {
                // The report is a genuine subset of the history that fails on its own.
                prop_assert!(!v.ops.is_empty());
                for o in &v.ops {
                    prop_assert_eq!(o, &ops[o.id]);
                }
                prop_assert!(matches!(check(&v.ops), Verdict::NotLinearizable(_)), "{}", v);
            }
            other => prop_assert!(false, "expected a violation, got {}", other),
        }
    }
}

/// A deterministic pseudo-random model history of `len` ops; `info_in_40` of every 40 ops (on
/// average) end `Info`, half of them applied.
fn long_model_history(len: usize, info_in_40: u64, seed: u64) -> Vec<Op> {
    let mut x = seed;
    let steps: Vec<Step> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let outcome = match (x >> 32) % 40 {
                0 => 0,
                k if k <= info_in_40 => 1 + (k % 2) as u8,
                _ => 9,
            };
            (
                (x % 4) as u8,
                (x >> 8) as u8,
                (x >> 16) % 60,
                (x >> 24) % 60,
                outcome,
                ((x >> 40) % 8) as u32,
            )
        })
        .collect();
    run_model(&steps)
}

#[test]
fn long_history_with_many_info_ops_is_linearizable_quickly() {
    let ops = long_model_history(3000, 8, 12345);
    let start = std::time::Instant::now();
    let verdict = check(&ops);
    assert!(verdict.is_linearizable(), "{verdict}");
    assert!(
        start.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn stale_read_late_in_a_long_history_with_info_ops_is_found() {
    let mut ops = long_model_history(400, 2, 12345);
    let last_read = ops
        .iter()
        .rposition(|o| matches!(o.outcome, Outcome::Ok(OkResult::Read(Some(_)))))
        .expect("the generated history has a read");
    // Value 2 was written near the start and overwritten long ago.
    ops[last_read].outcome = read(Some(2));
    match check(&ops) {
        Verdict::NotLinearizable(v) => {
            assert!(v.ops.len() <= 4, "{v}");
            assert!(v.ops.iter().any(|o| o.id == last_read), "{v}");
        }
        other => panic!("expected a violation, got {other}"),
    }
}

/// Maps `p` onto `None` or a value in `1..=n`.
fn value_or_absent(p: u8, n: u64) -> Option<u64> {
    Some(u64::from(p) % (n + 1)).filter(|&v| v > 0)
}

/// Perturbs op `target` of a model-generated history: a different read result, a flipped CAS
/// result, or an earlier invocation.
fn perturb(ops: &mut [Op], target: usize, to: u8) {
    let n = ops.len() as u64;
    let Some(o) = ops.get_mut(target) else { return };
    match (&o.f, &mut o.outcome) {
        (OpFn::Read, Outcome::Ok(OkResult::Read(v))) => {
            *v = value_or_absent(to, n);
        }
        (OpFn::Cas { .. }, Outcome::Ok(OkResult::Cas(b))) => *b = !*b,
        _ => o.invoke_ns = o.invoke_ns.saturating_sub(u64::from(to) * 1_000_000),
    }
}

/// Plain Wing–Gong search without memoisation or reductions: some unlinearized op invoked no later
/// than every pending return goes next; `Info` ops may be left out (they can take effect last).
fn brute_force(ops: &[&Op], done: &mut Vec<bool>, state: State) -> bool {
    if (0..ops.len()).all(|i| done[i] || ops[i].outcome == Outcome::Info) {
        return true;
    }
    let horizon = (0..ops.len())
        .filter(|&i| !done[i])
        .map(|i| return_time(ops[i]))
        .min();
    for i in 0..ops.len() {
        if done[i] || horizon.is_some_and(|h| ops[i].invoke_ns > h) {
            continue;
        }
        if let Some(next) = step(state, ops[i]) {
            done[i] = true;
            let found = brute_force(ops, done, next);
            done[i] = false;
            if found {
                return true;
            }
        }
    }
    false
}

/// Wing–Gong with only Lowe's memoisation of (linearized set, state): the reference the reductions
/// must agree with on histories too large for [`brute_force`].
fn plain_memoised(ops: &[&Op]) -> bool {
    fn go(
        ops: &[&Op],
        done: &mut Vec<bool>,
        state: State,
        seen: &mut std::collections::HashSet<(Vec<bool>, State)>,
    ) -> bool {
        if (0..ops.len()).all(|i| done[i] || ops[i].outcome == Outcome::Info) {
            return true;
        }
        if !seen.insert((done.clone(), state)) {
            return false;
        }
        let horizon = (0..ops.len())
            .filter(|&i| !done[i])
            .map(|i| return_time(ops[i]))
            .min();
        for i in 0..ops.len() {
            if done[i] || horizon.is_some_and(|h| ops[i].invoke_ns > h) {
                continue;
            }
            if let Some(next) = step(state, ops[i]) {
                done[i] = true;
                let found = go(ops, done, next, seen);
                done[i] = false;
                if found {
                    return true;
                }
            }
        }
        false
    }
    go(
        ops,
        &mut vec![false; ops.len()],
        None,
        &mut std::collections::HashSet::new(),
    )
}

/// One arbitrary op: `(kind, value pick, start_ms, length_ms, outcome, result pick)`.
type RawOp = (u8, u8, u64, u64, u8, u8);

/// Arbitrary (usually non-linearizable) histories over values `1..=n`, writes unique.
fn arbitrary_history(raw: &[RawOp]) -> Vec<Op> {
    let n = raw.len() as u64;
    let pick = |p: u8| value_or_absent(p, n);
    raw.iter()
        .enumerate()
        .map(|(i, &(kind, v, start, len, outcome, res))| {
            let f = match kind % 4 {
                0 => OpFn::Read,
                1 => OpFn::Write(i as u64 + 1),
                2 => OpFn::Cas {
                    expect: pick(v),
                    new: i as u64 + 1,
                },
                _ => OpFn::Delete,
            };
            let outcome = match outcome % 6 {
                0 => Outcome::Fail,
                1 | 2 => Outcome::Info,
                _ => Outcome::Ok(match f {
                    OpFn::Read => OkResult::Read(pick(res)),
                    OpFn::Cas { .. } => OkResult::Cas(res & 1 == 0),
                    _ => OkResult::Done,
                }),
            };
            op(i, i as u32, f, start, start + len, outcome)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn search_agrees_with_brute_force_on_small_histories(
        raw in prop::collection::vec(
            (0u8..4, any::<u8>(), 0u64..20, 0u64..12, 0u8..6, any::<u8>()),
            1..9,
        ),
    ) {
        let ops = arbitrary_history(&raw);
        let relevant: Vec<&Op> = ops.iter().filter(|o| search::is_relevant(o)).collect();
        let expected = brute_force(&relevant, &mut vec![false; relevant.len()], None);
        let verdict = check(&ops);
        prop_assert_eq!(verdict.is_linearizable(), expected, "{}\n{:#?}", verdict, ops);
        let decided = !matches!(verdict, Verdict::Unknown { .. });
        prop_assert!(decided, "inconclusive: {}", verdict);
    }

    #[test]
    fn search_agrees_with_brute_force_on_perturbed_model_histories(
        steps in prop::collection::vec(
            (0u8..4, any::<u8>(), 0u64..30, 0u64..30, 0u8..10, 0u32..5),
            1..12,
        ),
        which in any::<prop::sample::Index>(),
        to in any::<u8>(),
    ) {
        // Near-linearizable histories: one op's result or timing is perturbed.
        let mut ops = run_model(&steps);
        perturb(&mut ops, which.index(steps.len()), to);
        let relevant: Vec<&Op> = ops.iter().filter(|o| search::is_relevant(o)).collect();
        let expected = brute_force(&relevant, &mut vec![false; relevant.len()], None);
        let verdict = check(&ops);
        prop_assert_eq!(verdict.is_linearizable(), expected, "{}\n{:#?}", verdict, ops);
    }

    #[test]
    fn search_agrees_with_plain_memoised_search_on_perturbed_model_histories(
        steps in prop::collection::vec(
            (0u8..4, any::<u8>(), 0u64..40, 0u64..40, 0u8..10, 0u32..5),
            1..40,
        ),
        which in any::<prop::sample::Index>(),
        to in any::<u8>(),
    ) {
        let mut ops = run_model(&steps);
        perturb(&mut ops, which.index(steps.len()), to);
        let relevant: Vec<&Op> = ops.iter().filter(|o| search::is_relevant(o)).collect();
        let expected = plain_memoised(&relevant);
        let verdict = check(&ops);
        prop_assert_eq!(verdict.is_linearizable(), expected, "{}\n{:#?}", verdict, ops);
    }
}
