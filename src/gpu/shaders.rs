//! Every WGSL file, embedded at build time: each kernel family's shaders next to its launch
//! plan and CPU reference (`src/kernels/FAMILY/NAME.wgsl`), the optimizer's next to it
//! (`src/executor/optim.wgsl`), the benchmark's peak probes (`src/bench/peaks.wgsl`), and the
//! snippets they share (`src/kernels/include/`). Tests validate each shader, snippets
//! expanded, with naga. `runtime_checks`: what wgpu checks in them as they run.

/// A table of (name, WGSL source) for the files `src/{dir}{path}.wgsl`.
macro_rules! wgsl_table {
    ($(#[$doc:meta])* $table:ident, $dir:literal, [$(($name:literal, $path:literal)),* $(,)?]) => {
        $(#[$doc])*
        pub const $table: &[(&str, &str)] = &[
            $(($name, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/", $dir, $path, ".wgsl")))),*
        ];
    };
}

wgsl_table!(
    /// (name, WGSL source) of every shader.
    ALL,
    "",
    [
        ("matmul", "kernels/matmul/matmul"),
        ("matmul_tiled", "kernels/matmul/matmul_tiled"),
        ("matmul_subgroup", "kernels/matmul/matmul_subgroup"),
        ("conv", "kernels/conv/conv"),
        ("conv_rows", "kernels/conv/conv_rows"),
        ("conv_tiled", "kernels/conv/conv_tiled"),
        ("dynconv", "kernels/dynconv/dynconv"),
        ("dynconv_wgrad", "kernels/dynconv/dynconv_wgrad"),
        ("elementwise", "kernels/elementwise/elementwise"),
        ("to_f16", "kernels/elementwise/to_f16"),
        ("broadcast", "kernels/broadcast/broadcast"),
        ("reduce", "kernels/reduce/reduce"),
        ("softmax", "kernels/softmax/softmax"),
        ("batchnorm", "kernels/batchnorm/batchnorm"),
        ("layernorm", "kernels/layernorm/layernorm"),
        ("gather", "kernels/gather/gather"),
        ("pool", "kernels/pool/pool"),
        ("optim", "executor/optim"),
        ("moe", "kernels/moe/moe"),
        ("moe_router", "kernels/moe/moe_router"),
        ("peaks", "bench/peaks"),
    ]
);

wgsl_table!(
    /// (name, WGSL) of every snippet in `src/kernels/include/`, expanded by `//@include NAME`.
    INCLUDES,
    "kernels/include/",
    [
        ("grid", "grid"),
        ("gemm_params", "gemm_params"),
        ("gemm_store", "gemm_store"),
        ("gemm_strides", "gemm_strides"),
        ("gemm_groups", "gemm_groups"),
        ("gemm_group_tile", "gemm_group_tile"),
        ("gemm_group_range", "gemm_group_range"),
        ("gemm_acc", "gemm_acc"),
        ("mul_precision", "mul_precision"),
        ("mul_flush", "mul_flush"),
        ("conv_mul_chunk", "conv_mul_chunk"),
        ("index", "index"),
        ("sigmoid", "sigmoid"),
        ("erf", "erf"),
        ("activation", "activation"),
        ("hash", "hash"),
        ("conv_common", "conv_common"),
        ("conv_forward", "conv_forward"),
        ("conv_forward_taps", "conv_forward_taps"),
        ("conv_store", "conv_store"),
        ("workgroup_tiles", "workgroup_tiles"),
        ("workgroup_tile_mul", "workgroup_tile_mul"),
        ("conv_columns", "conv_columns"),
        ("conv_wgrad_sample", "conv_wgrad_sample"),
        ("conv_wgrad_window", "conv_wgrad_window"),
        ("dw_wgrad_place", "dw_wgrad_place"),
        ("conv_dw_wgrad", "conv_dw_wgrad"),
        ("subgroup_place", "subgroup_place"),
    ]
);

fn find(table: &[(&'static str, &'static str)], name: &str) -> Option<&'static str> {
    table.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

pub fn source(name: &str) -> Option<&'static str> {
    find(ALL, name)
}

pub fn include(name: &str) -> Option<&'static str> {
    find(INCLUDES, name)
}

/// The runtime checks naga writes into our shaders on `backend` (docs/architecture.md, "Shader
/// runtime checks"). wgpu's defaults are for untrusted shaders: a 64-bit counter in every loop
/// (against infinite loops; several times slower loops, gfx-rs/wgpu#7698) and a clamp on every
/// array index. Ours are our own, and every loop advances by at least 1 (strides and
/// dilations are validated ≥ 1 in `graph::params`), so no loop gets a counter. Index clamps are
/// dropped only on Vulkan, whose robustBufferAccess (a core feature wgpu enables) keeps buffer
/// accesses in bounds without them (our kernels load past a buffer's end under a `select` at the edges
/// of tiles); a workgroup or register index out of range would be a kernel bug, which the
/// tests against the CPU reference see as wrong results. `PADNET_SHADER_CHECKS=1` keeps all
/// of wgpu's checks (to compare, or to diagnose a kernel).
pub fn runtime_checks(backend: wgpu::Backend, env: Option<&str>) -> wgpu::ShaderRuntimeChecks {
    if env.is_some_and(|v| v.trim() == "1") {
        return wgpu::ShaderRuntimeChecks::checked();
    }
    wgpu::ShaderRuntimeChecks {
        bounds_checks: backend != wgpu::Backend::Vulkan,
        force_loop_bounding: false,
        ..wgpu::ShaderRuntimeChecks::checked()
    }
}

/// The names of the runtime checks in `checks`, as bench records list them.
pub fn check_names(checks: wgpu::ShaderRuntimeChecks) -> Vec<String> {
    [
        ("bounds", checks.bounds_checks),
        ("loops", checks.force_loop_bounding),
    ]
    .iter()
    .filter(|(_, on)| *on)
    .map(|(name, _)| name.to_string())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::{check_names, runtime_checks};

    #[test]
    fn shaders_drop_loop_counters_everywhere_and_index_clamps_on_vulkan() {
        let names = |backend, env| check_names(runtime_checks(backend, env));
        assert!(names(wgpu::Backend::Vulkan, None).is_empty());
        for backend in [wgpu::Backend::Metal, wgpu::Backend::Dx12, wgpu::Backend::Gl] {
            assert_eq!(names(backend, None), ["bounds"]);
            assert_eq!(names(backend, Some("0")), ["bounds"]);
        }
        assert_eq!(names(wgpu::Backend::Vulkan, Some("1")), ["bounds", "loops"]);
    }
}
