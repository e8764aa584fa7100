//! The GPU tests must run on the backend we think they run on: without a Vulkan driver wgpu
//! silently falls back to GL, and CI would then test something else.

mod common;

#[test]
fn tests_run_on_the_expected_backend() {
    let gpu = common::gpu();
    let want = common::expected_backend();
    assert_eq!(
        gpu.info.backend, want,
        "tests ran on {} ({:?}), expected {want:?}; install mesa-vulkan-drivers or set \
         PADNET_EXPECT_BACKEND",
        gpu.info.name, gpu.info.backend
    );
}
