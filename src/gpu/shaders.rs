//! Every WGSL file in `shaders/` and its shared snippets in `shaders/include/`, embedded at
//! build time. Tests validate each shader, snippets expanded, with naga.

/// A table of (name, WGSL source) for the files `shaders/{dir}{name}.wgsl`.
macro_rules! wgsl_table {
    ($(#[$doc:meta])* $table:ident, $dir:literal, [$($name:literal),* $(,)?]) => {
        $(#[$doc])*
        pub const $table: &[(&str, &str)] = &[
            $(($name, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $dir, $name, ".wgsl")))),*
        ];
    };
}

wgsl_table!(
    /// (name, WGSL source) of every shader.
    ALL,
    "",
    [
        "matmul",
        "conv",
        "dynconv",
        "dynconv_wgrad",
        "elementwise",
        "broadcast",
        "reduce",
        "softmax",
        "batchnorm",
        "layernorm",
        "gather",
        "pool",
        "optim",
        "moe",
        "moe_router",
    ]
);

wgsl_table!(
    /// (name, WGSL) of every snippet in `shaders/include/`, expanded by `//@include NAME`.
    INCLUDES,
    "include/",
    [
        "grid",
        "index",
        "sigmoid",
        "erf",
        "activation",
        "hash",
        "conv_columns",
        "conv_wgrad_sample",
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
