//! Partition shapes from Jepsen's nemesis library: random halves, majorities ring, bridge, over
//! servers `s1..sN` (see [`crate::hosts`]).

use crate::hosts::{server, Host};

fn names(idx: &[usize]) -> Vec<Host> {
    idx.iter().map(|i| server(*i)).collect()
}

fn name_pairs(idx: &[(usize, usize)]) -> Vec<(Host, Host)> {
    idx.iter().map(|(a, b)| (server(*a), server(*b))).collect()
}

/// Splits `0..n` into two random non-empty halves (sizes ⌊n/2⌋ and ⌈n/2⌉), as Jepsen's
/// `partition-random-halves`.
pub fn random_halves(rng: &mut impl rand::Rng, n: usize) -> (Vec<Host>, Vec<Host>) {
    let (a, b) = random_halves_idx(rng, n);
    (names(&a), names(&b))
}

fn random_halves_idx(rng: &mut impl rand::Rng, n: usize) -> (Vec<usize>, Vec<usize>) {
    let mut nodes: Vec<usize> = (0..n).collect();
    rand::seq::SliceRandom::shuffle(nodes.as_mut_slice(), rng);
    let b = nodes.split_off(n / 2);
    let (mut a, mut b) = (nodes, b);
    a.sort_unstable();
    b.sort_unstable();
    (a, b)
}

/// Jepsen's `partition-majorities-ring`: place the nodes on a ring in random order; each node
/// keeps links only to the ⌊n/2⌋ nearest on either side, so every node sees a majority but no two
/// nodes see the same majority (for n ≥ 5; for n ≤ 4 some links are cut so views differ).
/// Returns the server pairs to cut, `(low, high)`.
pub fn majorities_ring(rng: &mut impl rand::Rng, n: usize) -> Vec<(Host, Host)> {
    name_pairs(&majorities_ring_idx(rng, n))
}

fn majorities_ring_idx(rng: &mut impl rand::Rng, n: usize) -> Vec<(usize, usize)> {
    let mut ring: Vec<usize> = (0..n).collect();
    rand::seq::SliceRandom::shuffle(ring.as_mut_slice(), rng);
    let reach = (n / 2).max(1).min(n.saturating_sub(1) / 2).max(1);
    let mut cut = Vec::new();
    for i in 0..n {
        for j in i + 1..n {
            let d = j - i;
            let ring_distance = d.min(n - d);
            if ring_distance > reach {
                let (a, b) = (ring[i], ring[j]);
                cut.push((a.min(b), a.max(b)));
            }
        }
    }
    if cut.is_empty() && n >= 3 {
        // n = 3: a ring of 3 is complete; cut one edge so two nodes lose each other but both
        // still reach the third (the smallest majorities-ring).
        cut.push((ring[0].min(ring[1]), ring[0].max(ring[1])));
    }
    cut.sort_unstable();
    cut
}

/// Jepsen's `partition-bridge`: two halves that cannot see each other, and one node that sees
/// both. Returns the server pairs to cut and the bridge node.
pub fn bridge(rng: &mut impl rand::Rng, n: usize) -> (Vec<(Host, Host)>, Host) {
    let (cut, b) = bridge_idx(rng, n);
    (name_pairs(&cut), server(b))
}

fn bridge_idx(rng: &mut impl rand::Rng, n: usize) -> (Vec<(usize, usize)>, usize) {
    let mut nodes: Vec<usize> = (0..n).collect();
    rand::seq::SliceRandom::shuffle(nodes.as_mut_slice(), rng);
    let bridge = nodes.pop().unwrap_or(0);
    let half = nodes.len() / 2;
    let (a, b) = nodes.split_at(half);
    let mut cut: Vec<(usize, usize)> =
        a.iter().flat_map(|x| b.iter().map(move |y| ((*x).min(*y), (*x).max(*y)))).collect();
    cut.sort_unstable();
    (cut, bridge)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn random_halves_cover_all_nodes_once() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for n in 2..7 {
            let (a, b) = random_halves_idx(&mut rng, n);
            assert!(!a.is_empty() && !b.is_empty());
            let mut all: Vec<_> = a.iter().chain(&b).copied().collect();
            all.sort_unstable();
            assert_eq!(all, (0..n).collect::<Vec<_>>());
        }
    }

    #[test]
    fn majorities_ring_leaves_every_node_a_majority() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for n in [3usize, 5, 7] {
            let cut = majorities_ring_idx(&mut rng, n);
            assert!(!cut.is_empty(), "n={n}: something is cut");
            for x in 0..n {
                let reachable = 1 + (0..n).filter(|y| *y != x && !cut.contains(&(x.min(*y), x.max(*y)))).count();
                assert!(reachable > n / 2, "n={n}: node {x} sees {reachable}, not a majority");
            }
        }
    }

    #[test]
    fn bridge_node_sees_both_halves() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let (cut, b) = bridge_idx(&mut rng, 5);
        assert!(cut.iter().all(|(x, y)| *x != b && *y != b));
        assert_eq!(cut.len(), 4, "2 x 2 links between the halves");
    }
}
