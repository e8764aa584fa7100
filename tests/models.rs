//! Architectures: parameter counts at 224×224 with 1000 classes against docs/method.md §4 (static
//! and DY-Conv K=4 columns; counts are of the reference architecture, within 0.5%), and
//! reference names. Graph construction only: no GPU.

use padnet_wgpu::graph::{DType, Graph, Role};
use padnet_wgpu::kernels::dynconv::Lambda;
use padnet_wgpu::models::{self, ModelConfig, Stem};
use padnet_wgpu::nn::dynamic::{ConvMode, DynConfig};
use padnet_wgpu::nn::Builder;

fn params(arch: &str, mode: ConvMode) -> (usize, Graph) {
    let cfg = ModelConfig {
        arch: arch.into(),
        width: 1.0,
        stem: Stem::Imagenet,
        dynamic: DynConfig {
            mode,
            kernels: 4,
            reduction: 16,
            lambda: Lambda::Both,
        },
    };
    let mut g = Graph::new();
    let x = g.input("images", &[1, 3, 224, 224], DType::F32);
    models::build(&cfg, &mut Builder::new(&mut g, true), x, 1000).unwrap();
    let n = g
        .tensors
        .iter()
        .filter(|t| matches!(t.role, Role::Param(_)))
        .map(|t| t.numel())
        .sum();
    (n, g)
}

fn close(got: usize, want_millions: f64) -> bool {
    ((got as f64 / 1e6) - want_millions).abs() / want_millions < 0.005
}

#[test]
fn parameter_counts_match_the_spec() {
    for (arch, stat, dynamic) in [
        ("resnet18", 11.69, 45.2),
        ("resnet50", 25.56, 97.1),
        ("mobilenetv2", 3.50, 10.65),
    ] {
        let (s, _) = params(arch, ConvMode::Static);
        let (d, _) = params(arch, ConvMode::Dynamic);
        assert!(close(s, stat), "{arch} static: {s} vs {stat}M");
        assert!(close(d, dynamic), "{arch} DY-Conv: {d} vs {dynamic}M");
    }
}

#[test]
fn reference_names() {
    let (_, g) = params("resnet18", ConvMode::Pad);
    for name in [
        "conv1.weight",
        "bn1.running_var",
        "layer1.layers.0.conv1.kernels_weights",
        "layer1.layers.1.conv2.phi_d",
        "layer2.layers.0.shortcut.layers.0.weight",
        "layer2.layers.0.shortcut.layers.1.weight",
        "layer4.layers.1.bn2.running_mean",
        "linear.bias",
    ] {
        assert!(g.find(name).is_some(), "no tensor named {name}");
    }
    let mask = g
        .find("layer3.layers.0.conv1.kernels_weights_mask")
        .unwrap();
    assert_eq!(g.tensors[mask].shape, vec![1, 256, 128, 3, 3]);
    let (_, m) = params("mobilenetv2", ConvMode::Pad);
    let dw = m
        .find("layers.layers.1.conv2.kernels_weights_mask")
        .unwrap();
    assert_eq!(
        m.tensors[dw].shape,
        vec![1, 96, 1, 3, 3],
        "depthwise PAD mask"
    );
}

#[test]
fn pad_deployable_counts_match_the_spec() {
    // docs/method.md §4: deployable (dynamic part) at κ = 0.3 and 0.5, K = 4, 224², 1000 classes.
    for (arch, k03, dyn03, k05) in [
        ("resnet18", 21.8, 13.4, 28.5),
        ("resnet50", 47.9, 28.1, 62.0),
        ("mobilenetv2", 6.06, 2.63, 7.37),
    ] {
        let (total, g) = params(arch, ConvMode::Pad);
        let layers: Vec<(usize, usize)> = g
            .tensors
            .iter()
            .filter(|t| t.name.ends_with(".kernels_weights"))
            .map(|t| (t.shape[0], t.numel() / t.shape[0]))
            .collect();
        let count = |kappa: f64| {
            let l: Vec<(usize, usize, usize)> = layers
                .iter()
                .map(|&(k, n)| (k, n, (kappa * n as f64).round() as usize))
                .collect();
            padnet_wgpu::imp::accounting(total, &l)
        };
        let (a03, a05) = (count(0.3), count(0.5));
        let near = |got: usize, want: f64| ((got as f64 / 1e6) - want).abs() / want < 0.01;
        assert!(
            near(a03.deployable, k03),
            "{arch} κ=0.3 deployable {} vs {k03}M",
            a03.deployable
        );
        assert!(
            near(a03.dynamic, dyn03),
            "{arch} κ=0.3 dynamic {} vs {dyn03}M",
            a03.dynamic
        );
        assert!(
            near(a05.deployable, k05),
            "{arch} κ=0.5 deployable {} vs {k05}M",
            a05.deployable
        );
    }
}
