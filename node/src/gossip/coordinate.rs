//! Vivaldi network coordinates: the maths of serf's `coordinate` package, in Rust.
//!
//! Source: hashicorp/serf `coordinate/coordinate.go`, `client.go`, `config.go` (Consul vendors it
//! as the LAN pool's coordinate client). A node's [`Coordinate`] is a point in an 8-dimensional
//! Euclidean space plus a non-Euclidean `Height` (the node's access-link delay) and an
//! `Adjustment` (an offset learned from recent errors); the estimated round-trip time between two
//! nodes is their distance, in seconds ([`Coordinate::distance_to`]). A [`Client`] moves its own
//! coordinate after every RTT sample to another node: the sample goes through a small moving-median
//! filter per node, then Vivaldi's spring update, the adjustment window and a weak gravity towards
//! the origin. Owns no I/O: the gossip driver measures RTTs ([`super::coord_ping`]); randomness
//! (the direction to push two coincident coordinates apart) comes from a seeded generator, never
//! from the OS, so a simulation replays. Never panics on bad input: an incompatible or non-finite
//! coordinate, or an RTT out of range, is refused with a [`CoordinateError`].

use std::collections::BTreeMap;
use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Tuning of the Vivaldi client (serf `coordinate.Config`); [`Config::default`] is serf's
/// `DefaultConfig`, which Consul uses unchanged for the LAN pool.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Dimensions of the Euclidean part (serf: 8).
    pub dimensionality: usize,
    /// Error ceiling, and the error a new coordinate starts with (serf: 1.5).
    pub vivaldi_error_max: f64,
    /// How fast the error estimate moves (serf `VivaldiCE`: 0.25).
    pub vivaldi_ce: f64,
    /// How fast the coordinate moves (serf `VivaldiCC`: 0.25).
    pub vivaldi_cc: f64,
    /// Samples averaged into the adjustment term; 0 turns it off (serf: 20).
    pub adjustment_window_size: usize,
    /// Smallest height, in seconds (serf: 10 µs).
    pub height_min_s: f64,
    /// RTT samples kept per node for the moving median (serf: 3).
    pub latency_filter_size: usize,
    /// Gravity's scale, in seconds: the pull to the origin grows with (distance / rho)² (serf: 150).
    pub gravity_rho_s: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            dimensionality: DIMENSIONALITY,
            vivaldi_error_max: 1.5,
            vivaldi_ce: 0.25,
            vivaldi_cc: 0.25,
            adjustment_window_size: 20,
            height_min_s: 10.0e-6,
            latency_filter_size: 3,
            gravity_rho_s: 150.0,
        }
    }
}

/// Consul's (and serf's default) dimensionality.
pub const DIMENSIONALITY: usize = 8;
/// Below this a distance or an error counts as zero (serf `zeroThreshold`), in seconds.
const ZERO_THRESHOLD: f64 = 1.0e-6;
/// Longest RTT sample accepted (serf `Client.Update`'s `maxRTT`).
pub const MAX_RTT: Duration = Duration::from_secs(10);

/// A network coordinate (serf `coordinate.Coordinate`; Consul's JSON `Coord`). Units: seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Coordinate {
    /// The Euclidean part ([`DIMENSIONALITY`] components).
    #[serde(rename = "Vec")]
    pub vec: Vec<f64>,
    /// How far off this coordinate is believed to be (relative; starts at the error ceiling).
    #[serde(rename = "Error")]
    pub error: f64,
    /// Offset added to every distance from this node, learned from recent samples.
    #[serde(rename = "Adjustment")]
    pub adjustment: f64,
    /// The non-Euclidean part: this node's own access delay.
    #[serde(rename = "Height")]
    pub height: f64,
}

/// Why a coordinate or a sample was refused (serf's error texts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoordinateError {
    #[error("dimensions aren't compatible")]
    Incompatible,
    #[error("coordinate is invalid")]
    Invalid,
    #[error("round trip time not in valid range, duration {0:?} is not a positive value less than {MAX_RTT:?}")]
    RttOutOfRange(Duration),
}

impl Coordinate {
    /// A coordinate at the origin with the maximum error (serf `NewCoordinate`).
    pub fn new(config: &Config) -> Self {
        Self { vec: vec![0.0; config.dimensionality], error: config.vivaldi_error_max, adjustment: 0.0, height: config.height_min_s }
    }

    /// Every component is finite (serf `IsValid`).
    pub fn is_valid(&self) -> bool {
        self.vec.iter().all(|c| c.is_finite()) && self.error.is_finite() && self.adjustment.is_finite() && self.height.is_finite()
    }

    /// Same dimensionality (serf `IsCompatibleWith`).
    pub fn is_compatible_with(&self, other: &Coordinate) -> bool {
        self.vec.len() == other.vec.len()
    }

    /// Estimated RTT to `other`, with both adjustments applied unless that would make it negative
    /// (serf `DistanceTo`). `None` if the dimensions differ (serf panics).
    pub fn distance_to(&self, other: &Coordinate) -> Option<Duration> {
        if !self.is_compatible_with(other) {
            return None;
        }
        let raw = self.raw_distance_to(other);
        let adjusted = raw + self.adjustment + other.adjustment;
        let s = if adjusted > 0.0 { adjusted } else { raw };
        // Out of range (non-finite) saturates rather than panicking.
        Some(Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX))
    }

    /// Distance without the adjustments, in seconds (serf `rawDistanceTo`).
    fn raw_distance_to(&self, other: &Coordinate) -> f64 {
        magnitude(&diff(&self.vec, &other.vec)) + self.height + other.height
    }

    /// Moves this coordinate by `force` seconds along the line from `other` (positive: away),
    /// adjusting the height in proportion (serf `ApplyForce`). Coincident coordinates are pushed
    /// apart in a random direction drawn from `rng`.
    fn apply_force(&self, config: &Config, rng: &mut ChaCha8Rng, force: f64, other: &Coordinate) -> Coordinate {
        let mut ret = self.clone();
        let (unit, mag) = unit_vector_at(rng, &self.vec, &other.vec);
        ret.vec = self.vec.iter().zip(&unit).map(|(v, u)| v + u * force).collect();
        if mag > ZERO_THRESHOLD {
            ret.height = (ret.height + other.height) * force / mag + ret.height;
            ret.height = ret.height.max(config.height_min_s);
        }
        ret
    }
}

/// Consul's `lib.ComputeDistance`: estimated RTT in seconds, +∞ when either side has no coordinate
/// (or their dimensions differ), so nodes without coordinates sort last.
pub fn compute_distance(a: Option<&Coordinate>, b: Option<&Coordinate>) -> f64 {
    match (a, b) {
        (Some(a), Some(b)) => a.distance_to(b).map_or(f64::INFINITY, |d| d.as_secs_f64()),
        _ => f64::INFINITY,
    }
}

fn diff(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x - y).collect()
}

fn magnitude(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// The unit vector from `b` to `a` and the distance between them; for coincident points a random
/// unit vector and 0 (serf `unitVectorAt`).
fn unit_vector_at(rng: &mut ChaCha8Rng, a: &[f64], b: &[f64]) -> (Vec<f64>, f64) {
    let d = diff(a, b);
    let mag = magnitude(&d);
    if mag > ZERO_THRESHOLD {
        return (d.iter().map(|x| x / mag).collect(), mag);
    }
    let r: Vec<f64> = d.iter().map(|_| rng.gen::<f64>() - 0.5).collect();
    let mag = magnitude(&r);
    if mag > ZERO_THRESHOLD {
        return (r.iter().map(|x| x / mag).collect(), 0.0);
    }
    let mut unit = vec![0.0; a.len()];
    if let Some(first) = unit.first_mut() {
        *first = 1.0;
    }
    (unit, 0.0)
}

/// Most nodes the latency filter remembers; past this the lexically first is forgotten (serf
/// forgets a node when it leaves; this bounds the map whatever the pool does).
const MAX_FILTERED_NODES: usize = 4096;

/// One node's Vivaldi state (serf `coordinate.Client`).
#[derive(Clone, Debug)]
pub struct Client {
    coord: Coordinate,
    origin: Coordinate,
    config: Config,
    adjustment_index: usize,
    adjustment_samples: Vec<f64>,
    latency_filter_samples: BTreeMap<String, Vec<f64>>,
    /// Times the coordinate went invalid and was reset to the origin (serf `ClientStats.Resets`).
    pub resets: u64,
    rng: ChaCha8Rng,
}

impl Client {
    /// A client at the origin; `rng` pushes coincident coordinates apart. Errors: dimensionality 0.
    pub fn new(config: Config, rng: ChaCha8Rng) -> Result<Self, String> {
        if config.dimensionality == 0 {
            return Err("dimensionality must be >0".into());
        }
        Ok(Self {
            coord: Coordinate::new(&config),
            origin: Coordinate::new(&config),
            adjustment_index: 0,
            adjustment_samples: vec![0.0; config.adjustment_window_size],
            latency_filter_samples: BTreeMap::new(),
            resets: 0,
            config,
            rng,
        })
    }

    /// This node's current coordinate.
    pub fn coordinate(&self) -> &Coordinate {
        &self.coord
    }

    /// Forces the coordinate (serf `SetCoordinate`). Errors: incompatible or invalid.
    pub fn set_coordinate(&mut self, coord: &Coordinate) -> Result<(), CoordinateError> {
        self.check(coord)?;
        self.coord = coord.clone();
        Ok(())
    }

    /// Forgets the RTT samples of `node` (serf `ForgetNode`).
    pub fn forget_node(&mut self, node: &str) {
        self.latency_filter_samples.remove(node);
    }

    fn check(&self, coord: &Coordinate) -> Result<(), CoordinateError> {
        if !self.coord.is_compatible_with(coord) {
            return Err(CoordinateError::Incompatible);
        }
        if !coord.is_valid() {
            return Err(CoordinateError::Invalid);
        }
        Ok(())
    }

    /// Moving median of the last few samples to `node`, with `rtt_s` added (serf `latencyFilter`).
    fn latency_filter(&mut self, node: &str, rtt_s: f64) -> f64 {
        if !self.latency_filter_samples.contains_key(node) && self.latency_filter_samples.len() >= MAX_FILTERED_NODES {
            self.latency_filter_samples.pop_first();
        }
        let samples = self.latency_filter_samples.entry(node.to_string()).or_default();
        samples.push(rtt_s);
        if samples.len() > self.config.latency_filter_size {
            samples.remove(0);
        }
        let mut sorted = samples.clone();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    }

    /// Vivaldi's spring step (serf `updateVivaldi`).
    fn update_vivaldi(&mut self, other: &Coordinate, rtt_s: f64) {
        let dist = self.coord.distance_to(other).map_or(0.0, |d| d.as_secs_f64());
        let rtt_s = rtt_s.max(ZERO_THRESHOLD);
        let wrongness = (dist - rtt_s).abs() / rtt_s;
        let total_error = (self.coord.error + other.error).max(ZERO_THRESHOLD);
        let weight = self.coord.error / total_error;
        let c = &self.config;
        self.coord.error = (c.vivaldi_ce * weight * wrongness + self.coord.error * (1.0 - c.vivaldi_ce * weight)).min(c.vivaldi_error_max);
        let force = c.vivaldi_cc * weight * (rtt_s - dist);
        self.coord = self.coord.apply_force(&self.config, &mut self.rng, force, other);
    }

    /// The adjustment term: the mean of recent (rtt − raw distance), halved (serf `updateAdjustment`).
    fn update_adjustment(&mut self, other: &Coordinate, rtt_s: f64) {
        let window = self.config.adjustment_window_size;
        if window == 0 {
            return;
        }
        let dist = self.coord.raw_distance_to(other);
        self.adjustment_samples[self.adjustment_index] = rtt_s - dist;
        self.adjustment_index = (self.adjustment_index + 1) % window;
        self.coord.adjustment = self.adjustment_samples.iter().sum::<f64>() / (2.0 * window as f64);
    }

    /// A weak pull towards the origin against drift (serf `updateGravity`).
    fn update_gravity(&mut self) {
        let dist = self.origin.distance_to(&self.coord).map_or(0.0, |d| d.as_secs_f64());
        let force = -(dist / self.config.gravity_rho_s).powi(2);
        let origin = self.origin.clone();
        self.coord = self.coord.apply_force(&self.config, &mut self.rng, force, &origin);
    }

    /// Takes one RTT sample to `node`, whose coordinate is `other`, and returns the updated
    /// coordinate (serf `Client.Update`). Errors: `other` incompatible or invalid, `rtt` above
    /// [`MAX_RTT`]; nothing changes then. A coordinate gone invalid resets to the origin.
    pub fn update(&mut self, node: &str, other: &Coordinate, rtt: Duration) -> Result<Coordinate, CoordinateError> {
        self.check(other)?;
        if rtt > MAX_RTT {
            return Err(CoordinateError::RttOutOfRange(rtt));
        }
        let rtt_s = self.latency_filter(node, rtt.as_secs_f64());
        self.update_vivaldi(other, rtt_s);
        self.update_adjustment(other, rtt_s);
        self.update_gravity();
        if !self.coord.is_valid() {
            self.resets += 1;
            self.coord = Coordinate::new(&self.config);
        }
        Ok(self.coord.clone())
    }

    /// Estimated RTT from this node to `other` (serf `Client.DistanceTo`); `None` if incompatible.
    pub fn distance_to(&self, other: &Coordinate) -> Option<Duration> {
        self.coord.distance_to(other)
    }
}

#[cfg(test)]
#[path = "coordinate_tests.rs"]
mod tests;
