//! Every WGSL file in `shaders/` and its shared snippets in `shaders/include/`, embedded at
//! build time. Tests validate each shader, snippets expanded, with naga.

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

macro_rules! include_table {
    ($($name:literal),* $(,)?) => {
        /// (name, WGSL) of every snippet in `shaders/include/`, expanded by `//@include NAME`.
        pub const INCLUDES: &[(&str, &str)] = &[
            $(($name, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/include/", $name, ".wgsl")))),*
        ];
    };
}

include_table!(
    "grid",
    "index",
    "sigmoid",
    "activation",
    "conv_columns",
    "conv_wgrad_sample"
);

pub fn include(name: &str) -> Option<&'static str> {
    INCLUDES.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}
