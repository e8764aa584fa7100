//! How a benchmark is timed (docs/benchmarks.md, "Timing"): GPU timestamps written at the
//! beginning and end of one compute pass where the adapter offers `TIMESTAMP_QUERY`, otherwise
//! the wall clock from submit to the fence. Either way a sample is one submit of `reps`
//! back-to-back repetitions, divided by `reps`; warm-up submits (pipeline JIT, first touch of
//! memory) are not sampled.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Timestamps written by the GPU at the start and end of the compute pass.
    GpuTimestamp,
    /// Host time from submit until the GPU signals the work is done.
    WallClock,
}

/// Times compute passes on one device.
pub struct Timer {
    gpu: Arc<Gpu>,
    /// Query set with two timestamps and the buffer they resolve into.
    queries: Option<(wgpu::QuerySet, wgpu::Buffer)>,
}

impl Timer {
    /// Uses GPU timestamps when the device was opened with `TIMESTAMP_QUERY`, unless
    /// `wall_clock` asks for host timing.
    pub fn new(gpu: Arc<Gpu>, wall_clock: bool) -> Timer {
        let queries =
            (!wall_clock && gpu.features.contains(wgpu::Features::TIMESTAMP_QUERY)).then(|| {
                let set = gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("bench timestamps"),
                    ty: wgpu::QueryType::Timestamp,
                    count: 2,
                });
                let resolve = gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("bench timestamps resolved"),
                    size: 16,
                    usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                });
                (set, resolve)
            });
        Timer { gpu, queries }
    }

    pub fn method(&self) -> Method {
        match self.queries {
            Some(_) => Method::GpuTimestamp,
            None => Method::WallClock,
        }
    }

    /// Milliseconds per repetition of what `record` records, repeated `reps` times in one
    /// compute pass and one submit.
    pub fn time(&self, reps: usize, record: &dyn Fn(&mut wgpu::ComputePass<'_>)) -> Result<f64> {
        let reps = reps.max(1);
        let gpu = &self.gpu;
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("bench"),
                timestamp_writes: self.queries.as_ref().map(|(set, _)| {
                    wgpu::ComputePassTimestampWrites {
                        query_set: set,
                        beginning_of_pass_write_index: Some(0),
                        end_of_pass_write_index: Some(1),
                    }
                }),
            });
            for _ in 0..reps {
                record(&mut pass);
            }
        }
        if let Some((set, resolve)) = &self.queries {
            enc.resolve_query_set(set, 0..2, resolve, 0);
        }
        let start = Instant::now();
        gpu.queue.submit([enc.finish()]);
        gpu.wait()?;
        let wall_ms = start.elapsed().as_secs_f64() * 1e3;
        let ms = match &self.queries {
            None => wall_ms,
            Some((_, resolve)) => {
                let ticks: Vec<u64> =
                    bytemuck::pod_collect_to_vec(&gpu.read_bytes(resolve, 0, 16)?);
                let period_ns = gpu.queue.get_timestamp_period() as f64;
                if ticks[1] < ticks[0] {
                    return Err(Error::Device(format!(
                        "the adapter's timestamps went backwards ({} then {}); rerun with --wall-clock",
                        ticks[0], ticks[1]
                    )));
                }
                (ticks[1] - ticks[0]) as f64 * period_ns * 1e-6
            }
        };
        Ok(ms / reps as f64)
    }
}

/// Untimed submits before the samples of [`Timer::samples`]: one to JIT-compile and touch
/// memory, one to size the repetitions.
pub const WARMUP_SUBMITS: usize = 2;

impl Timer {
    /// `samples` samples (ms per repetition) of what `record` records, after
    /// [`WARMUP_SUBMITS`]; each sample repeats it enough times (at most `max_reps`) to take
    /// about `target_ms`. Returns the samples and the repetitions per sample.
    pub fn samples(
        &self,
        samples: usize,
        target_ms: f64,
        max_reps: usize,
        record: &dyn Fn(&mut wgpu::ComputePass<'_>),
    ) -> Result<(Vec<f64>, usize)> {
        self.time(1, record)?;
        let reps = reps_for(self.time(1, record)?, target_ms, max_reps);
        let times = (0..samples.max(1))
            .map(|_| self.time(reps, record))
            .collect::<Result<Vec<_>>>()?;
        Ok((times, reps))
    }
}

/// How many repetitions fill about `target_ms` per sample, from one probe timing.
fn reps_for(probe_ms: f64, target_ms: f64, max: usize) -> usize {
    ((target_ms / probe_ms.max(1e-3)) as usize).clamp(1, max)
}

/// Median, minimum and 95th percentile (nearest rank) of some samples.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub median_ms: f64,
    pub min_ms: f64,
    pub p95_ms: f64,
}

/// The median of some values (the mean of the middle two for an even count; NaN for none).
pub fn median(values: &[f64]) -> f64 {
    let mut s = values.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

impl Stats {
    pub fn of(samples: &[f64]) -> Stats {
        let mut s = samples.to_vec();
        s.sort_by(|a, b| a.total_cmp(b));
        let n = s.len();
        let p95 = s[((0.95 * n as f64).ceil() as usize).clamp(1, n) - 1];
        Stats {
            median_ms: median(&s),
            min_ms: s[0],
            p95_ms: p95,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_median_min_and_nearest_rank_p95() {
        let s = Stats::of(&[5.0, 1.0, 3.0]);
        assert_eq!((s.median_ms, s.min_ms, s.p95_ms), (3.0, 1.0, 5.0));
        let s = Stats::of(&[4.0, 1.0, 2.0, 3.0]);
        assert_eq!((s.median_ms, s.min_ms, s.p95_ms), (2.5, 1.0, 4.0));
        let twenty: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(Stats::of(&twenty).p95_ms, 19.0);
        assert_eq!(reps_for(10.0, 300.0, 200), 30);
        assert_eq!(reps_for(0.0, 300.0, 200), 200);
        assert_eq!(reps_for(1e3, 300.0, 200), 1);
    }
}
