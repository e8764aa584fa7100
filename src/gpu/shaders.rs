//! Every WGSL file in `shaders/`, embedded at build time. Tests validate each one with naga.

macro_rules! shader_table {
    ($($name:literal),* $(,)?) => {
        /// (name, WGSL source) of every shader.
        pub const ALL: &[(&str, &str)] = &[
            $(($name, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $name, ".wgsl")))),*
        ];
    };
}

shader_table!(
    "gemm",
    "conv2d",
    "dynconv",
    "dynconv_wgrad",
    "elementwise",
    "broadcast",
    "reduce",
    "softmax",
    "batchnorm",
    "layernorm",
    "pool",
    "optim",
    "moe"
);

pub fn source(name: &str) -> Option<&'static str> {
    ALL.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}
