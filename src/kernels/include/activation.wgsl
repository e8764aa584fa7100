// Activations by the override constant ACT: Act::code's numbering (0 relu, 1 relu6,
// 2 erf-gelu, 3 sigmoid, 4 tanh, 5 softplus) and ACT_NONE (identity; fused BatchNorm without
// an activation). Shared by elementwise.wgsl and batchnorm.wgsl.
//@include sigmoid

const ACT_NONE: u32 = 6u;
override ACT: u32 = ACT_NONE;

//@include erf

fn act(x: f32) -> f32 {
    switch ACT {
        case 0u: { return max(x, 0.0); }
        case 1u: { return clamp(x, 0.0, 6.0); }
        case 2u: { return 0.5 * x * (1.0 + erf_approx(x * SQRT1_2)); }
        case 3u: { return sigmoid(x); }
        case 4u: { return tanh(x); }
        case ACT_NONE: { return x; }
        // Stable form: max(x, 0) + ln(1 + e^-|x|).
        default: { return max(x, 0.0) + log(1.0 + exp(-abs(x))); }
    }
}

// d act(x) / dx
fn act_grad(x: f32) -> f32 {
    switch ACT {
        case 0u: { return select(0.0, 1.0, x > 0.0); }
        case 1u: { return select(0.0, 1.0, x > 0.0 && x < 6.0); }
        case 2u: { return 0.5 * (1.0 + erf_approx(x * SQRT1_2)) + x * INV_SQRT_2PI * exp(-0.5 * x * x); }
        case 3u: { let s = sigmoid(x); return s * (1.0 - s); }
        case 4u: { let t = tanh(x); return 1.0 - t * t; }
        case ACT_NONE: { return 1.0; }
        default: { return sigmoid(x); }
    }
}

// `act` and `act_grad` of each component (the vec4 entries).
fn act4(x: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(act(x.x), act(x.y), act(x.z), act(x.w));
}

fn act_grad4(x: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(act_grad(x.x), act_grad(x.y), act_grad(x.z), act_grad(x.w));
}
