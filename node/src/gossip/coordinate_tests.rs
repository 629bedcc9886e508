//! serf's `coordinate` tests (`client_test.go`, `coordinate_test.go`, `performance_test.go`),
//! ported: the same inputs and expected values, so our maths is serf's.

use super::*;
use rand::SeedableRng;

fn cfg(dims: usize) -> Config {
    Config { dimensionality: dims, ..Config::default() }
}

fn client(config: Config) -> Client {
    Client::new(config, ChaCha8Rng::seed_from_u64(1)).expect("valid config")
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() <= 1.0e-6, "{a} != {b}");
}

fn close_vec(a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        close(*x, *y);
    }
}

fn secs(d: Option<Duration>) -> f64 {
    d.expect("compatible").as_secs_f64()
}

#[test]
fn new_client_refuses_zero_dimensions_and_starts_at_the_origin() {
    assert!(Client::new(cfg(0), ChaCha8Rng::seed_from_u64(1)).unwrap_err().contains("dimensionality"));
    let c = client(cfg(7));
    assert_eq!(c.coordinate(), &Coordinate::new(&cfg(7)));
}

#[test]
fn update_moves_away_from_a_node_that_is_further_than_estimated() {
    let mut c = client(cfg(3));
    close_vec(&c.coordinate().vec, &[0.0, 0.0, 0.0]);
    let mut other = Coordinate::new(&cfg(3));
    other.vec[2] = 0.001;
    let rtt = Duration::from_secs_f64(2.0 * other.vec[2]);
    let mut got = c.update("node", &other, rtt).expect("valid sample");
    assert!(got.vec[2] < 0.0, "z {} should be < 0", got.vec[2]);
    got.vec[2] = 99.0;
    c.set_coordinate(&got).expect("valid");
    close(c.coordinate().vec[2], 99.0);
}

#[test]
fn an_rtt_out_of_range_is_refused_and_changes_nothing() {
    let mut c = client(cfg(3));
    let mut other = Coordinate::new(&cfg(3));
    other.vec[2] = 0.001;
    let before = c.distance_to(&other);
    for rtt in [Duration::MAX, Duration::from_secs(11)] {
        assert!(matches!(c.update("node", &other, rtt), Err(CoordinateError::RttOutOfRange(_))));
        assert_eq!(c.distance_to(&other), before);
    }
}

#[test]
fn distance_is_the_euclidean_distance_plus_heights() {
    let config = Config { height_min_s: 0.0, ..cfg(3) };
    let c = client(config.clone());
    let mut other = Coordinate::new(&config);
    other.vec[2] = 12.345;
    close(secs(c.distance_to(&other)), 12.345);
}

#[test]
fn latency_filter_is_a_moving_median_per_node() {
    let mut c = client(Config::default());
    let mut f = |node: &str, s: f64, want: f64| close(c.latency_filter(node, s), want);
    f("alice", 0.201, 0.201);
    f("alice", 0.200, 0.201);
    f("alice", 0.207, 0.201);
    f("alice", 1.9, 0.207);
    f("alice", 0.203, 0.207);
    f("alice", 0.199, 0.203);
    f("alice", 0.211, 0.203);
    f("bob", 0.310, 0.310);
    c.forget_node("alice");
    close(c.latency_filter("alice", 0.888), 0.888);
}

#[test]
fn invalid_coordinates_are_refused_and_a_broken_state_resets() {
    let mut c = client(cfg(3));
    let mut other = Coordinate::new(&cfg(3));
    other.vec[0] = f64::NAN;
    assert!(!other.is_valid());
    let rtt = Duration::from_millis(250);
    assert_eq!(c.update("node", &other, rtt), Err(CoordinateError::Invalid));
    assert!(c.coordinate().is_valid());
    assert_eq!(c.set_coordinate(&other), Err(CoordinateError::Invalid));
    other.vec = vec![0.0; 6];
    assert_eq!(c.update("node", &other, rtt), Err(CoordinateError::Incompatible));
    assert_eq!(c.set_coordinate(&other), Err(CoordinateError::Incompatible));
    assert!(c.coordinate().is_valid());

    c.coord.vec[0] = f64::NAN;
    let got = c.update("node", &Coordinate::new(&cfg(3)), rtt).expect("valid sample");
    assert!(got.is_valid());
    assert_eq!(c.resets, 1);
}

#[test]
fn apply_force_matches_serf() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut config = Config { height_min_s: 0.0, ..cfg(3) };
    let origin = Coordinate::new(&config);
    let mut above = Coordinate::new(&config);
    above.vec = vec![0.0, 0.0, 2.9];
    let c = origin.apply_force(&config, &mut rng, 5.3, &above);
    close_vec(&c.vec, &[0.0, 0.0, -5.3]);
    let mut right = Coordinate::new(&config);
    right.vec = vec![3.4, 0.0, -5.3];
    let c = c.apply_force(&config, &mut rng, 2.0, &right);
    close_vec(&c.vec, &[-2.0, 0.0, -5.3]);
    let c = origin.apply_force(&config, &mut rng, 1.0, &origin);
    close(secs(origin.distance_to(&c)), 1.0);

    config.height_min_s = 10.0e-6;
    let origin = Coordinate::new(&config);
    let c = origin.apply_force(&config, &mut rng, 5.3, &above);
    close_vec(&c.vec, &[0.0, 0.0, -5.3]);
    close(c.height, config.height_min_s + 5.3 * config.height_min_s / 2.9);
    let c = origin.apply_force(&config, &mut rng, -5.3, &above);
    close_vec(&c.vec, &[0.0, 0.0, 5.3]);
    close(c.height, config.height_min_s);
}

#[test]
fn distance_to_matches_serf() {
    let config = Config { height_min_s: 0.0, ..cfg(3) };
    let (mut c1, mut c2) = (Coordinate::new(&config), Coordinate::new(&config));
    c1.vec = vec![-0.5, 1.3, 2.4];
    c2.vec = vec![1.2, -2.3, 3.4];
    close(secs(c1.distance_to(&c1)), 0.0);
    close(secs(c1.distance_to(&c2)), secs(c2.distance_to(&c1)));
    close(secs(c1.distance_to(&c2)), 4.104875150354758);
    c1.adjustment = -1.0e6;
    close(secs(c1.distance_to(&c2)), 4.104875150354758);
    c1.adjustment = 0.1;
    c2.adjustment = 0.2;
    close(secs(c1.distance_to(&c2)), 4.104875150354758 + 0.3);
    c1.height = 0.7;
    c2.height = 0.1;
    close(secs(c1.distance_to(&c2)), 4.104875150354758 + 0.3 + 0.8);
    let mut bad = c1.clone();
    bad.vec.push(0.0);
    assert_eq!(c1.distance_to(&bad), None, "serf panics; we answer no distance");
    assert_eq!(compute_distance(Some(&c1), None), f64::INFINITY);
}

/// serf `TestPerformance_Split`: 25 nodes in two halves 1 ms apart inside and 11 ms across,
/// 1000 cycles of one random sample per node; the estimates must be within serf's bounds.
#[test]
fn a_split_network_converges_within_serfs_bounds() {
    const NODES: usize = 25;
    let (lan, wan) = (0.001, 0.010);
    let split = NODES / 2;
    let truth = |i: usize, j: usize| {
        if i == j {
            0.0
        } else if (i <= split) != (j <= split) {
            lan + wan
        } else {
            lan
        }
    };
    let mut clients: Vec<Client> =
        (0..NODES).map(|i| Client::new(Config::default(), ChaCha8Rng::seed_from_u64(i as u64)).expect("config")).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for _ in 0..1000 {
        for i in 0..NODES {
            let j = rng.gen_range(0..NODES);
            if j == i {
                continue;
            }
            let other = clients[j].coordinate().clone();
            clients[i].update(&format!("n{j}"), &other, Duration::from_secs_f64(truth(i, j))).expect("sample");
        }
    }
    let (mut sum, mut max, mut n) = (0.0f64, 0.0f64, 0.0);
    for i in 0..NODES {
        for j in i + 1..NODES {
            let est = secs(clients[i].distance_to(clients[j].coordinate()));
            let err = (est - truth(i, j)).abs() / truth(i, j);
            sum += err;
            max = max.max(err);
            n += 1.0;
        }
    }
    // serf's bounds are on the absolute error in seconds averaged the same way: 60 µs and 480 µs
    // against RTTs of 1 and 11 ms, i.e. within a few percent; check the relative error.
    assert!(sum / n < 0.10 && max < 0.5, "avg {} max {}", sum / n, max);
}
