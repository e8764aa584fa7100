//! `info`: every adapter and the limits we request.

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
    Ok(())
}
