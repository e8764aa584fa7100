//! `info`: every adapter, and the limits, features and shader checks of the selected one.

use crate::gpu::{self, Gpu};

pub fn info(selector: Option<&str>) -> anyhow::Result<()> {
    let adapters = gpu::list_adapters();
    if adapters.is_empty() {
        return Err(gpu::no_adapter().into());
    }
    println!("Adapters (best first is chosen unless --adapter / PADNET_ADAPTER says otherwise):");
    for (i, a) in adapters.iter().enumerate() {
        println!("  {}", gpu::describe_adapter(i, &a.get_info()));
    }
    let g = Gpu::new(selector)?;
    let l = &g.limits;
    println!("\nSelected: {}", g.describe());
    println!("Requested limits:");
    println!(
        "  max_storage_buffers_per_shader_stage  {}",
        l.max_storage_buffers_per_shader_stage
    );
    println!(
        "  max_storage_buffer_binding_size       {} MiB",
        l.max_storage_buffer_binding_size >> 20
    );
    println!(
        "  max_buffer_size                       {} MiB",
        l.max_buffer_size >> 20
    );
    println!(
        "  max_compute_invocations_per_workgroup {}",
        l.max_compute_invocations_per_workgroup
    );
    println!(
        "  max_compute_workgroup_storage_size    {} KiB",
        l.max_compute_workgroup_storage_size >> 10
    );
    println!(
        "  max_compute_workgroups_per_dimension  {}",
        l.max_compute_workgroups_per_dimension
    );
    // Subgroups with their sizes: the subgroup kernels' blocking follows them.
    let lanes = g
        .subgroup_lanes()
        .map(|[lo, hi]| format!(" ({lo}–{hi} lanes)"));
    let features: Vec<String> = (g.features.iter_names())
        .map(|(name, _)| match name {
            "SUBGROUP" => format!("{name}{}", lanes.clone().unwrap_or_default()),
            _ => name.to_string(),
        })
        .collect();
    println!("Optional features: {}", none_if_empty(&features));
    let checks = gpu::shaders::check_names(g.shader_checks);
    let hint = match g.shader_checks.force_loop_bounding {
        true => "",
        false => " (PADNET_SHADER_CHECKS=1 for all of wgpu's)",
    };
    println!("Shader runtime checks: {}{hint}", none_if_empty(&checks));
    Ok(())
}

fn none_if_empty(names: &[String]) -> String {
    match names {
        [] => "none".into(),
        _ => names.join(", "),
    }
}
