//! GPU runtime: adapter choice, device with explicit limits, shader/pipeline cache, buffers,
//! and error capture so that validation errors, out-of-memory and device loss become `Error`s.

pub mod blocking;
pub mod dispatch;
pub mod memory;

use crate::error::{Error, Result};
pub use blocking::Blocking;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub mod shaders;
pub mod template;
pub mod tuning;

/// The limits we request. Deliberately portable (at most 16 storage buffers per stage, the GL
/// fallback's maximum), so a kernel that runs in CI also runs elsewhere. Storage bindings: what
/// the adapter offers up to 1 GiB (lavapipe and the WebGPU default: 128 MiB). Plans keep every
/// binding within 128 MiB except DY-Conv's chunks of per-sample kernels, which grow with the
/// limit (`PlanCtx::chunk_bytes`).
pub fn requested_limits(adapter: &wgpu::Limits) -> wgpu::Limits {
    wgpu::Limits {
        max_storage_buffers_per_shader_stage: adapter.max_storage_buffers_per_shader_stage.min(16),
        max_buffer_size: adapter.max_buffer_size.min(1 << 30),
        max_storage_buffer_binding_size: adapter.max_storage_buffer_binding_size.min(1 << 30),
        ..Default::default()
    }
}

/// The bytes a DY-Conv chunk of per-sample kernels may hold under `limits`: 3/4 of the
/// storage-binding limit (96 MiB under the portable 128 MiB), or `mib` (`PADNET_CHUNK_MIB`).
fn chunk_bytes(limits: &wgpu::Limits, mib: Option<&str>) -> Result<usize> {
    // A binding never spans more than its buffer.
    let binding = limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size) as usize;
    let Some(text) = mib else {
        return Ok(binding / 4 * 3);
    };
    match text.trim().parse::<usize>() {
        Ok(mib) if mib >= 1 && mib << 20 <= binding => Ok(mib << 20),
        _ => Err(Error::Invalid(format!(
            "PADNET_CHUNK_MIB={text}: expected a whole number of MiB from 1 to {} (this \
             device's storage-binding limit)",
            binding >> 20
        ))),
    }
}

/// Rank adapters: discrete > integrated > virtual > other > CPU; Vulkan/Metal/DX12 before GL.
fn adapter_rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let ty = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    let backend = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    };
    (ty, backend)
}

pub fn describe_adapter(i: usize, info: &wgpu::AdapterInfo) -> String {
    format!(
        "[{i}] {} | backend {:?} | type {:?} | driver {} {}",
        info.name, info.backend, info.device_type, info.driver, info.driver_info
    )
}

fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = searched_backends(desc.backends);
    wgpu::Instance::new(desc)
}

/// The backends searched for adapters: those WGPU_BACKEND names (honoured by `_from_env`,
/// which gives `from_env`), else every native one.
fn searched_backends(from_env: wgpu::Backends) -> wgpu::Backends {
    if std::env::var_os("WGPU_BACKEND").is_some() {
        return from_env;
    }
    wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12 | wgpu::Backends::GL
}

/// The error when no backend found an adapter: which were searched, and what to install
/// for each.
pub fn no_adapter() -> Error {
    let backends =
        searched_backends(wgpu::InstanceDescriptor::new_without_display_handle_from_env().backends);
    let searched = BACKEND_ADVICE
        .iter()
        .filter(|(b, ..)| backends.contains(*b));
    Error::NoAdapter {
        searched: searched
            .clone()
            .map(|(_, name, _)| *name)
            .collect::<Vec<_>>()
            .join(", "),
        advice: searched
            .map(|(_, name, advice)| format!("\n  {name}: {advice}"))
            .collect(),
    }
}

/// Each backend, its name, and what to install so that it finds an adapter.
const BACKEND_ADVICE: [(wgpu::Backends, &str, &str); 4] = [
    (
        wgpu::Backends::VULKAN,
        "Vulkan",
        "(Linux, Windows) the GPU vendor's driver, or Mesa's (Debian/Ubuntu: `sudo apt-get install mesa-vulkan-drivers`, which includes lavapipe, a CPU Vulkan)",
    ),
    (
        wgpu::Backends::METAL,
        "Metal",
        "(macOS) built into macOS 10.13 or later on a Mac with a Metal GPU",
    ),
    (
        wgpu::Backends::DX12,
        "DX12",
        "(Windows 10 or later) the GPU vendor's driver; WARP, Windows' CPU device, comes with the OS",
    ),
    (
        wgpu::Backends::GL,
        "GL",
        "(fallback) an OpenGL ES 3.1 / EGL driver, e.g. Mesa's (Debian/Ubuntu: `sudo apt-get install libegl1 libgles2`)",
    ),
];

/// All adapters in preference order (best first), as `(original index, adapter)`.
pub fn list_adapters() -> Vec<wgpu::Adapter> {
    let inst = instance();
    pollster::block_on(inst.enumerate_adapters(wgpu::Backends::all()))
}

/// Picks an adapter by selector: an index into `list_adapters()`, or a case-insensitive
/// substring of the adapter name or backend (e.g. "llvmpipe", "nvidia", "vulkan").
pub fn choose_adapter(selector: Option<&str>) -> Result<wgpu::Adapter> {
    let adapters = list_adapters();
    if adapters.is_empty() {
        return Err(no_adapter());
    }
    let listing = || {
        adapters
            .iter()
            .enumerate()
            .map(|(i, a)| format!("  {}", describe_adapter(i, &a.get_info())))
            .collect::<Vec<_>>()
            .join("\n")
    };
    match selector.map(str::trim).filter(|s| !s.is_empty()) {
        Some(sel) => {
            if let Ok(i) = sel.parse::<usize>() {
                return adapters
                    .get(i)
                    .cloned()
                    .ok_or_else(|| Error::AdapterNotFound {
                        selector: sel.into(),
                        available: listing(),
                    });
            }
            let needle = sel.to_lowercase();
            let mut hits: Vec<_> = adapters
                .iter()
                .filter(|a| {
                    let i = a.get_info();
                    i.name.to_lowercase().contains(&needle)
                        || format!("{:?}", i.backend).to_lowercase() == needle
                })
                .collect();
            hits.sort_by_key(|a| adapter_rank(&a.get_info()));
            hits.first()
                .map(|a| (*a).clone())
                .ok_or_else(|| Error::AdapterNotFound {
                    selector: sel.into(),
                    available: listing(),
                })
        }
        None => {
            let mut sorted = adapters.clone();
            sorted.sort_by_key(|a| adapter_rank(&a.get_info()));
            Ok(sorted.remove(0))
        }
    }
}

/// Errors reported asynchronously by wgpu (validation, OOM, device loss), collected here and
/// turned into `Err` at the next synchronisation point.
#[derive(Default)]
struct ErrorSink {
    messages: Vec<String>,
    lost: Option<String>,
}

pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    /// Register blocking of the GEMM-like kernels: large on CPU adapters, small on GPUs;
    /// `PADNET_BLOCKING=cpu|gpu|TMxTNxWXxWY` overrides (to test and tune variants).
    pub blocking: Blocking,
    /// How GEMMs pick their kernel, and the autotune results of this adapter.
    pub gemm: tuning::GemmPolicy,
    pub tuning: Arc<tuning::TuneTable>,
    /// The precision GEMMs and convolutions multiply in (f16 only where the device has
    /// `SHADER_F16`).
    pub precision: tuning::Precision,
    /// Whether GEMMs and convolutions that multiply in f16 read their weights stored as f16:
    /// parameter weights from an f16 copy of the parameters (`executor::compile`,
    /// `HalfWeights`), DY-Conv/PAD's per-sample kernels as the kernel assembly writes them
    /// (`PlanCtx::half_weights`); `PADNET_HALF_WEIGHTS=0` keeps them f32 (to compare the two).
    pub half_weights: bool,
    /// Whether sliding-window convolutions broadcast the weights their samples share (static
    /// layers, a split layer's W_S rows), and the register and transposed convolutions the
    /// operand a row of lanes shares, by subgroup operations where the subgroups allow
    /// (`PlanCtx::weight_broadcast`); `PADNET_WB=0` turns it off (to compare the two).
    pub weight_broadcast: bool,
    /// Whether GPU convolutions with few workgroups split their reduction over channels
    /// (`PlanCtx::split_k`); `PADNET_SPLIT_K=0` keeps it whole (to compare the two).
    pub split_k: bool,
    /// Which kernels GPU convolutions' forward and input gradient run (`PlanCtx::conv`):
    /// timed per class by default, `PADNET_CONV=registers|tiled` fixes them
    /// (docs/architecture.md, "Tiled convolutions").
    pub conv: tuning::ConvPolicy,
    /// Bytes of per-sample kernels a DY-Conv/PAD-Conv chunk of samples may hold
    /// (`PlanCtx::chunk_bytes`): 3/4 of the storage-binding limit, or `PADNET_CHUNK_MIB`
    /// (to compare chunk sizes; at most the binding limit).
    pub chunk_bytes: usize,
    /// The runtime checks naga adds to every shader (`shaders::runtime_checks`).
    pub shader_checks: wgpu::ShaderRuntimeChecks,
    sink: Arc<Mutex<ErrorSink>>,
    modules: Mutex<HashMap<ModuleKey, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<PipelineKey, wgpu::ComputePipeline>>,
}

/// A shader source expanded with its template parameters.
type ModuleKey = (&'static str, Vec<(&'static str, u32)>);

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct PipelineKey {
    pub shader: &'static str,
    pub entry: &'static str,
    pub template: Vec<(&'static str, u32)>,
    /// Override constants, as (name, f64 bits) so the key is hashable.
    pub constants: Vec<(&'static str, u64)>,
}

impl Gpu {
    /// Opens the adapter chosen by `selector` (or `PADNET_ADAPTER`, or the best one).
    pub fn new(selector: Option<&str>) -> Result<Self> {
        let env_sel = std::env::var("PADNET_ADAPTER").ok();
        let adapter = choose_adapter(selector.or(env_sel.as_deref()))?;
        Self::from_adapter(adapter)
    }

    /// The adapter of a data-parallel rank that is the `local_rank`-th process on its
    /// machine: `selector` when given, else the `local_rank`-th (cyclically) of the adapters of
    /// the best kind (type and backend), so that N ranks on an N-GPU machine take one GPU each.
    pub fn for_local_rank(selector: Option<&str>, local_rank: usize) -> Result<Self> {
        let env_sel = std::env::var("PADNET_ADAPTER").ok();
        if selector.or(env_sel.as_deref()).is_some() {
            return Self::new(selector);
        }
        let mut adapters = list_adapters();
        adapters.sort_by_key(|a| adapter_rank(&a.get_info()));
        let best = adapters
            .first()
            .map(|a| adapter_rank(&a.get_info()))
            .ok_or_else(no_adapter)?;
        adapters.retain(|a| adapter_rank(&a.get_info()) == best);
        let n = adapters.len();
        Self::from_adapter(adapters.swap_remove(local_rank % n))
    }

    pub fn from_adapter(adapter: wgpu::Adapter) -> Result<Self> {
        let info = adapter.get_info();
        let limits = requested_limits(&adapter.limits());
        // Optional features are requested only where their users have a portable fallback:
        // timestamps time benchmarks (the wall clock otherwise); subgroups give GEMMs a third
        // kernel (the other two otherwise); f16 arithmetic is an option that says plainly when
        // the device lacks it (f32 otherwise).
        let features = adapter.features()
            & (wgpu::Features::TIMESTAMP_QUERY
                | wgpu::Features::SUBGROUP
                | wgpu::Features::SHADER_F16);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("padnet-wgpu"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::Device(format!("request_device on '{}': {e}", info.name)))?;
        let sink = Arc::new(Mutex::new(ErrorSink::default()));
        {
            let sink = sink.clone();
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                if let Ok(mut s) = sink.lock() {
                    s.messages.push(e.to_string());
                }
            }));
        }
        {
            let sink = sink.clone();
            device.set_device_lost_callback(move |reason, msg| {
                if let Ok(mut s) = sink.lock() {
                    s.lost = Some(format!("{reason:?}: {msg}"));
                }
            });
        }
        let blocking = match std::env::var("PADNET_BLOCKING") {
            Ok(spec) => Blocking::parse(&spec)?,
            Err(_) => Blocking::for_device(info.device_type),
        };
        let gemm = tuning::GemmPolicy::for_device(info.device_type)?;
        let chunk_bytes = chunk_bytes(&limits, std::env::var("PADNET_CHUNK_MIB").ok().as_deref())?;
        let conv = tuning::ConvPolicy::from_env()?;
        let autotunes = gemm == tuning::GemmPolicy::Autotune
            || (conv == tuning::ConvPolicy::Autotune && info.device_type != wgpu::DeviceType::Cpu);
        let tuning = Arc::new(match autotunes {
            true => tuning::TuneTable::load(&info),
            false => tuning::TuneTable::in_memory(),
        });
        Ok(Gpu {
            blocking,
            gemm,
            tuning,
            precision: tuning::Precision::F32,
            half_weights: std::env::var("PADNET_HALF_WEIGHTS").map_or(true, |v| v != "0"),
            weight_broadcast: std::env::var("PADNET_WB").map_or(true, |v| v != "0"),
            split_k: std::env::var("PADNET_SPLIT_K").map_or(true, |v| v != "0"),
            conv,
            chunk_bytes,
            shader_checks: shaders::runtime_checks(
                info.backend,
                std::env::var("PADNET_SHADER_CHECKS").ok().as_deref(),
            ),
            device,
            queue,
            info,
            limits,
            features,
            sink,
            modules: Mutex::new(HashMap::new()),
            pipelines: Mutex::new(HashMap::new()),
        })
    }

    /// The fewest and most lanes a subgroup has on this device, where it has subgroup
    /// operations (and its sizes are powers of two, as the subgroup GEMM's blocking assumes).
    pub fn subgroup_lanes(&self) -> Option<[u32; 2]> {
        let lanes = [self.info.subgroup_min_size, self.info.subgroup_max_size];
        (self.features.contains(wgpu::Features::SUBGROUP)
            && lanes.iter().all(|l| l.is_power_of_two()))
        .then_some(lanes)
    }

    /// This device with GEMMs and convolutions multiplying in `precision`; f16 needs
    /// `SHADER_F16`.
    pub fn with_precision(mut self, precision: tuning::Precision) -> Result<Self> {
        if precision == tuning::Precision::F16
            && !self.features.contains(wgpu::Features::SHADER_F16)
        {
            return Err(Error::Device(format!(
                "--precision f16: '{}' has no shader-f16 (f16 arithmetic in shaders); use f32",
                self.info.name
            )));
        }
        self.precision = precision;
        Ok(self)
    }

    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {:?}, {} {})",
            self.info.name,
            self.info.backend,
            self.info.device_type,
            self.info.driver,
            self.info.driver_info
        )
    }

    /// Returns the first asynchronous error since the last check, if any.
    pub fn check(&self) -> Result<()> {
        let mut s = self.sink.lock().expect("error sink poisoned");
        if let Some(lost) = &s.lost {
            if !lost.starts_with("Destroyed") {
                return Err(Error::Device(format!("device lost ({lost})")));
            }
        }
        if !s.messages.is_empty() {
            let msg = s.messages.remove(0);
            s.messages.clear();
            return Err(Error::Device(msg));
        }
        Ok(())
    }

    /// Blocks until all submitted work is done, then reports any captured error.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Device(format!("poll: {e}")))?;
        self.check()
    }

    fn module(
        &self,
        shader: &'static str,
        template: &[(&'static str, u32)],
    ) -> Result<wgpu::ShaderModule> {
        let mut modules = self.modules.lock().expect("module cache poisoned");
        let key = (shader, template.to_vec());
        if let Some(m) = modules.get(&key) {
            return Ok(m.clone());
        }
        let src = shaders::source(shader)
            .ok_or_else(|| Error::Invalid(format!("unknown shader '{shader}'")))?;
        let src = template::expand(src, template)?;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(shader),
            source: wgpu::ShaderSource::Wgsl(src.into()),
        };
        // SAFETY: the shaders are ours and `runtime_checks` keeps what they need: no loop of
        // theirs runs forever, and without index clamps the platform bounds buffer accesses.
        let m = unsafe {
            self.device
                .create_shader_module_trusted(desc, self.shader_checks)
        };
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Device(format!("shader {shader}: {e}")));
        }
        modules.insert(key, m.clone());
        Ok(m)
    }

    /// Pipeline for (shader, template parameters, entry point, override constants), created
    /// once and cached.
    pub fn pipeline(
        &self,
        shader: &'static str,
        template: &[(&'static str, u32)],
        entry: &'static str,
        constants: &[(&'static str, f64)],
    ) -> Result<wgpu::ComputePipeline> {
        let key = PipelineKey {
            shader,
            entry,
            template: template.to_vec(),
            constants: constants.iter().map(|(n, v)| (*n, v.to_bits())).collect(),
        };
        if let Some(p) = self.pipelines.lock().expect("pipeline cache").get(&key) {
            return Ok(p.clone());
        }
        let module = self.module(shader, template)?;
        let started = std::time::Instant::now();
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let p = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Device(format!("pipeline {shader}:{entry}: {e}")));
        }
        // Driver compile time per variant: on lavapipe the register-blocked kernels cost
        // minutes cold, which is what CI pays (docs/architecture.md, "Compile time").
        if std::env::var_os("PADNET_LOG_PIPELINES").is_some() {
            eprintln!(
                "pipeline {shader}:{entry} {template:?} compiled in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        self.pipelines
            .lock()
            .expect("pipeline cache")
            .insert(key, p.clone());
        Ok(p)
    }

    pub fn pipeline_count(&self) -> usize {
        self.pipelines.lock().map(|p| p.len()).unwrap_or(0)
    }

    /// The memory budget buffers on this adapter are checked against, where one is known.
    pub fn memory_budget(&self) -> Result<Option<memory::Budget>> {
        memory::device_budget(self.info.device_type)
    }

    /// A storage buffer of `bytes` (rounded up by [`storage_size`]), zero-initialised. Errors
    /// on OOM.
    pub fn storage_buffer(&self, label: &str, bytes: u64) -> Result<wgpu::Buffer> {
        let size = storage_size(bytes);
        if size > self.limits.max_buffer_size {
            return Err(Error::Device(format!(
                "buffer '{label}' needs {size} bytes, over the device limit of {}",
                self.limits.max_buffer_size
            )));
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Device(format!(
                "out of GPU memory allocating '{label}' ({size} bytes): {e}"
            )));
        }
        Ok(buf)
    }

    pub fn uniform_buffer(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(16).div_ceil(16) * 16,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    pub fn staging_buffer(&self, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: bytes.max(16).div_ceil(16) * 16,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// Reads `bytes` bytes at `offset` of `buf` back to the host (blocking).
    pub fn read_bytes(&self, buf: &wgpu::Buffer, offset: u64, bytes: u64) -> Result<Vec<u8>> {
        let padded = bytes.div_ceil(4) * 4;
        let staging = self.staging_buffer(padded);
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(buf, offset, &staging, 0, padded);
        self.queue.submit([enc.finish()]);
        self.map_and_copy(&staging, padded, bytes as usize)
    }

    /// Maps an already-filled MAP_READ buffer and copies out `bytes` bytes.
    pub fn map_and_copy(&self, staging: &wgpu::Buffer, len: u64, bytes: usize) -> Result<Vec<u8>> {
        self.map_and_copy_after(staging, len, bytes, None)
    }

    /// [`map_and_copy`](Self::map_and_copy) of a buffer that the submission `after` fills:
    /// waits for that submission only (later ones may still run), or (None) for all.
    pub fn map_and_copy_after(
        &self,
        staging: &wgpu::Buffer,
        len: u64,
        bytes: usize,
        after: Option<wgpu::SubmissionIndex>,
    ) -> Result<Vec<u8>> {
        let slice = staging.slice(0..len);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        let poll = wgpu::PollType::Wait {
            submission_index: after,
            timeout: None,
        };
        self.device
            .poll(poll)
            .map_err(|e| Error::Device(format!("poll: {e}")))?;
        self.check()?;
        rx.recv()
            .map_err(|_| Error::Device("readback callback dropped".into()))?
            .map_err(|e| Error::Device(format!("readback map failed: {e}")))?;
        let out = {
            let view = slice
                .get_mapped_range()
                .map_err(|e| Error::Device(format!("readback map range: {e}")))?;
            view[..bytes].to_vec()
        };
        staging.unmap();
        Ok(out)
    }

    pub fn read_f32(&self, buf: &wgpu::Buffer, offset: u64, len: usize) -> Result<Vec<f32>> {
        let bytes = self.read_bytes(buf, offset, (len * 4) as u64)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }
}

/// The size of the storage buffer [`Gpu::storage_buffer`] creates for `bytes`: at least 16
/// and a multiple of 16.
pub fn storage_size(bytes: u64) -> u64 {
    bytes.max(16).div_ceil(16) * 16
}

/// Splits a 1-D workgroup count into (x, y) so neither exceeds the 65535 per-dimension limit.
/// Kernels recover the linear index as `wg.x + wg.y * num_workgroups.x`.
pub fn grid_1d(workgroups: u32) -> [u32; 3] {
    const MAX: u32 = 65535;
    if workgroups <= MAX {
        [workgroups.max(1), 1, 1]
    } else {
        let y = workgroups.div_ceil(MAX);
        [workgroups.div_ceil(y), y, 1]
    }
}

#[cfg(test)]
mod tests {
    use super::chunk_bytes;

    #[test]
    fn chunk_bytes_follow_the_binding_limit_or_the_variable() {
        let limits = |binding: u64| wgpu::Limits {
            max_storage_buffer_binding_size: binding,
            max_buffer_size: 1 << 30,
            ..Default::default()
        };
        assert_eq!(chunk_bytes(&limits(128 << 20), None).unwrap(), 96 << 20);
        assert_eq!(chunk_bytes(&limits(1 << 30), None).unwrap(), 768 << 20);
        assert_eq!(chunk_bytes(&limits(1 << 30), Some("96")).unwrap(), 96 << 20);
        let small_buffers = wgpu::Limits {
            max_buffer_size: 256 << 20,
            ..limits(1 << 30)
        };
        assert_eq!(chunk_bytes(&small_buffers, None).unwrap(), 192 << 20);
        for bad in ["0", "129", "-1", "lots"] {
            let e = chunk_bytes(&limits(128 << 20), Some(bad)).unwrap_err();
            assert!(e.to_string().contains("PADNET_CHUNK_MIB"), "{e}");
        }
    }
}
