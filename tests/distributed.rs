//! Data-parallel training (docs/distributed.md): N ranks of batch B train as one rank of batch
//! N·B (SyncBN on, gradients averaged, IMP scores summed), a run resumes with another number
//! of ranks at the same global batch, and a rank that fails stops the others.
//!
//! Ranks here are threads on one lavapipe adapter (`--adapters 0,0`). The runs are a few
//! steps long: N ranks sum in another order than one rank does, and these early, unstable
//! steps amplify such float32 rounding differences fast (a ResNet-10 PAD run's epoch loss
//! moves 7e-4 relative after 4 steps when the learning rate changes by 1e-5 relative;
//! docs/distributed.md), so the tolerance of 1e-4 is checked over 2 to 4 steps.

use std::path::Path;
use std::process::Command;

fn train(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_padnet-wgpu"))
        .env_remove("PADNET_ADAPTER")
        .arg("train")
        .arg("--quiet")
        .args(args)
        .output()
        .expect("binary runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn metrics(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every epoch's losses and accuracies agree within `tol` (relative).
fn assert_same_metrics(a: &Path, b: &Path, tol: f64) {
    assert_same(
        a,
        b,
        &["train_loss", "train_acc", "test_loss", "test_acc"],
        tol,
    );
}

/// Every epoch's metrics `keys` agree within `tol` (relative).
fn assert_same(a: &Path, b: &Path, keys: &[&str], tol: f64) {
    let (ma, mb) = (metrics(a), metrics(b));
    assert_eq!(ma.len(), mb.len());
    for (ea, eb) in ma.iter().zip(&mb) {
        for &key in keys {
            let (x, y) = (ea[key].as_f64().unwrap(), eb[key].as_f64().unwrap());
            let rel = (x - y).abs() / x.abs().max(1e-12);
            assert!(
                rel <= tol,
                "epoch {} {key}: {} vs {} ({rel:.1e} relative)",
                ea["epoch"],
                a.display(),
                b.display()
            );
        }
    }
}

/// The run's checkpoint tensors whose names pass `keep`, sorted by name: (name, raw bytes).
fn tensors(run: &Path, keep: impl Fn(&str) -> bool) -> Vec<(String, Vec<u8>)> {
    tensors_in(&run.join("model.safetensors"), keep)
}

fn tensors_in(file: &Path, keep: impl Fn(&str) -> bool) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(file).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<_> = st
        .tensors()
        .into_iter()
        .filter(|(name, _)| keep(name))
        .map(|(name, t)| (name, t.data().to_vec()))
        .collect();
    out.sort();
    out
}

fn masks(run: &Path) -> Vec<(String, Vec<u8>)> {
    masks_in(&run.join("model.safetensors"))
}

fn masks_in(file: &Path) -> Vec<(String, Vec<u8>)> {
    tensors_in(file, |name| name.ends_with("mask"))
}

/// simple-cnn on `limit` Fashion-MNIST training images for one epoch.
fn cnn(limit: &'static str) -> [&'static str; 12] {
    [
        "--model",
        "simple-cnn",
        "--dataset",
        "fashion-mnist",
        "--limit-train",
        limit,
        "--limit-test",
        "128",
        "--epochs",
        "1",
        "--seed",
        "3",
    ]
}

fn fresh(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("padnet-dist-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn ok(args: &[&str]) {
    let (code, out) = train(args);
    assert_eq!(code, 0, "{args:?}:\n{out}");
}

/// simple-cnn: one rank of 64 and two ranks of 32 train alike (SyncBN); with `--local-bn`
/// each rank normalises by its own 32 images' statistics, which the training loss shows.
#[test]
fn two_ranks_train_as_one_rank_with_twice_the_batch() {
    let (one, two, local) = (fresh("cnn-1"), fresh("cnn-2"), fresh("cnn-local"));
    let common = cnn("256");
    let o = one.to_str().unwrap();
    let t = two.to_str().unwrap();
    ok(&[&common[..], &["--batch-size", "64", "--out", o]].concat());
    ok(&[
        &common[..],
        &["--batch-size", "32", "--adapters", "0,0", "--out", t],
    ]
    .concat());
    assert_same_metrics(&one, &two, 1e-4);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(two.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["ranks"], 2);

    let l = local.to_str().unwrap();
    let flags = [
        "--batch-size",
        "32",
        "--adapters",
        "0,0",
        "--local-bn",
        "--out",
        l,
    ];
    ok(&[&common[..], &flags].concat());
    let loss = |run: &Path| metrics(run)[0]["train_loss"].as_f64().unwrap();
    let (sync, own) = (loss(&two), loss(&local));
    assert!(
        (sync - own).abs() > 1e-3 * sync,
        "local BatchNorm statistics change the training ({sync} vs {own})"
    );
    for run in [one, two, local] {
        let _ = std::fs::remove_dir_all(run);
    }
}

/// PAD-MoE MiniLM (its first two layers, `common::minilm_l2`; dropout 0.1, noisy top-2 of 4
/// routers, IMP before training) on 2 ranks of 8 vs 1 rank of 16, 2 steps: identical masks, metrics
/// ≤ 1e-4. Each rank draws its part of the global batch's dropout masks and router noise, and the
/// MoE balance penalty is taken over the global batch's sums. The training loss barely sees the
/// penalty over 2 steps (a penalty of each rank's own batch moves it by 4e-7 only), but the routers
/// do: they start at zero and Adam moves them by about ±lr whatever the gradient's size, so they
/// are compared too, relative to each tensor's largest value: ≤ 1e-2 (measured 1.6e-4 here, 1.7e-3
/// at 4 steps of the 6-layer model, where a per-rank penalty moved them by 1.9, as did per-rank
/// noise draws).
#[test]
fn pad_moe_minilm_on_two_ranks_trains_as_one_rank() {
    let (one, two) = (fresh("moe-1"), fresh("moe-2"));
    let l2 = common::minilm_l2();
    let common = [
        "--model",
        "minilm-l6",
        "--model-dir",
        l2.to_str().unwrap(),
        "--mode",
        "pad",
        "--experts",
        "4",
        "--limit-train",
        "32",
        "--limit-test",
        "16",
        "--max-len",
        "16",
        "--imp-samples",
        "16",
        "--epochs",
        "1",
        "--seed",
        "3",
    ];
    let (o, t) = (one.to_str().unwrap(), two.to_str().unwrap());
    ok(&[&common[..], &["--batch-size", "16", "--out", o]].concat());
    ok(&[
        &common[..],
        &["--batch-size", "8", "--adapters", "0,0", "--out", t],
    ]
    .concat());
    let keys = ["train_loss", "train_acc", "dev_loss", "dev_acc"];
    assert_same(&one, &two, &keys, 1e-4);
    assert_eq!(masks(&one), masks(&two));
    let routers = |run: &Path| tensors(run, |n| n.ends_with(".w_gate") || n.ends_with(".w_noise"));
    let (ra, rb) = (routers(&one), routers(&two));
    assert!(!ra.is_empty());
    for ((name, a), (_, b)) in ra.iter().zip(&rb) {
        let floats = |bytes: &[u8]| -> Vec<f32> {
            let le = |c: &[u8]| f32::from_le_bytes(c.try_into().unwrap());
            bytes.chunks_exact(4).map(le).collect()
        };
        let (a, b) = (floats(a), floats(b));
        let largest = a.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = a
            .iter()
            .zip(&b)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            diff <= 1e-2 * largest,
            "{name}: {diff} vs largest {largest}"
        );
    }
    let _ = std::fs::remove_dir_all(&one);
    let _ = std::fs::remove_dir_all(&two);
}

/// `experiment --adapters 0,0`: every run of the experiment trains on the two ranks (and
/// matches the one-rank experiment of twice the batch), then is exported and timed once.
/// `imp --adapters 0,0` of its PAD checkpoint partitions as one rank of twice the batch.
#[test]
fn experiment_and_imp_run_on_the_ranks() {
    let (one, two) = (fresh("exp-1"), fresh("exp-2"));
    let common = [
        "experiment",
        "--model",
        "resnet10",
        "--width",
        "0.125",
        "--dataset",
        "fashion-mnist",
        "--limit-train",
        "64",
        "--limit-test",
        "32",
        "--epochs",
        "1",
        "--seeds",
        "0",
        "--kappas",
        "0.5",
        "--baselines",
        "static",
        "--imp-batches",
        "1",
        "--quiet",
    ];
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_padnet-wgpu"))
            .env_remove("PADNET_ADAPTER")
            .args(args)
            .output()
            .expect("binary runs");
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    // Two steps: longer runs drift apart by rounding (module docs).
    run(&[
        &common[..],
        &["--batch-size", "32", "--out", one.to_str().unwrap()],
    ]
    .concat());
    let two_ranks = ["--batch-size", "16", "--adapters", "0,0", "--out"];
    run(&[&common[..], &two_ranks, &[two.to_str().unwrap()]].concat());
    for tag in ["static-s0", "pad-k0.5-s0"] {
        assert_same_metrics(&one.join(tag), &two.join(tag), 1e-4);
    }
    assert!(two.join("pad-k0.5-s0/deploy.safetensors").is_file());
    assert!(two.join("results.md").is_file());

    let pad = two.join("pad-k0.5-s0");
    let checkpoint = pad.join("model.safetensors");
    let imp = |batch: &str, out: &str, more: &[&str]| {
        let args = [
            "imp",
            "--checkpoint",
            checkpoint.to_str().unwrap(),
            "--kappa",
            "0.3",
        ];
        let out = pad.join(out);
        let out = out.to_str().unwrap();
        let rest = ["--imp-batches", "2", "--batch-size", batch, "--out", out];
        run(&[&args[..], &rest, more].concat());
    };
    imp("32", "one/imp.safetensors", &[]);
    imp("16", "two/imp.safetensors", &["--adapters", "0,0"]);
    assert_eq!(
        masks_in(&pad.join("one/imp.safetensors")),
        masks_in(&pad.join("two/imp.safetensors"))
    );
    let _ = std::fs::remove_dir_all(&one);
    let _ = std::fs::remove_dir_all(&two);
}

#[test]
fn pad_resnet_on_two_ranks_partitions_and_resumes_as_one_rank() {
    let (one, two) = (fresh("pad-1"), fresh("pad-2"));
    let common = [
        "--model",
        "resnet10",
        "--mode",
        "pad",
        "--width",
        "0.125",
        "--stem",
        "cifar",
        "--dataset",
        "fashion-mnist",
        "--limit-train",
        "64",
        "--limit-test",
        "128",
        "--kappa",
        "0.5",
        "--imp-batches",
        "2",
        "--seed",
        "1",
    ];
    let o = one.to_str().unwrap();
    let t = two.to_str().unwrap();
    ok(&[
        &common[..],
        &["--epochs", "1", "--batch-size", "64", "--out", o],
    ]
    .concat());
    ok(&[
        &common[..],
        &[
            "--epochs",
            "1",
            "--batch-size",
            "32",
            "--adapters",
            "0,0",
            "--out",
            t,
        ],
    ]
    .concat());
    assert_eq!(masks(&one), masks(&two), "IMP partitions alike");
    assert_same_metrics(&one, &two, 1e-4);

    // The two-rank run goes on as one rank of the same global batch...
    ok(&[
        &common[..],
        &["--epochs", "2", "--batch-size", "64", "--resume", t],
    ]
    .concat());
    ok(&[
        &common[..],
        &["--epochs", "2", "--batch-size", "64", "--resume", o],
    ]
    .concat());
    assert_same_metrics(&one, &two, 1e-4);
    // ...but not as one of another: the schedule and the batches would change.
    let (code, out) = train(
        &[
            &common[..],
            &["--epochs", "3", "--batch-size", "32", "--resume", t],
        ]
        .concat(),
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("global batch"), "{out}");
    let _ = std::fs::remove_dir_all(&one);
    let _ = std::fs::remove_dir_all(&two);
}

#[test]
fn a_failing_rank_stops_the_others_with_its_own_error() {
    let out_dir = fresh("fail");
    let (code, out) = train(
        &[
            &cnn("128")[..],
            &[
                "--adapters",
                "0,no-such-gpu-xyz",
                "--out",
                out_dir.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("no-such-gpu-xyz"), "{out}");
    assert!(
        !out_dir.exists(),
        "a run that failed before its first checkpoint leaves nothing"
    );
}

mod common;
use padnet_wgpu::dist::Comm;
use padnet_wgpu::executor::{interp, Executable, ParamStore};
use padnet_wgpu::graph::autodiff::backward;
use padnet_wgpu::graph::op::Act;
use padnet_wgpu::graph::{DType, Graph, Init, Op, TensorId};

/// BatchNorm (train, fused ReLU) and its backward over `n` samples of [n, 3, 5, 6]: the graph
/// and its (x, dy, y, dx, gamma, beta, running mean, running var) tensors.
fn bn_graph(n: usize) -> (Graph, [TensorId; 8]) {
    let mut g = Graph::new();
    let x = g.input("x", &[n, 3, 5, 6], DType::F32);
    g.tensors[x].requires_grad = true;
    let gamma = g.param("gamma", &[3], Init::Ones);
    let beta = g.param("beta", &[3], Init::Zeros);
    let rm = g.state("running_mean", &[3], Init::Zeros);
    let rv = g.state("running_var", &[3], Init::Ones);
    let op = Op::BatchNorm {
        eps: 1e-5,
        momentum: 0.1,
        train: true,
        act: Some(Act::Relu),
    };
    let y = g.push(op, &[x, gamma, beta, rm, rv]).unwrap()[0];
    let dy = g.input("dy", &[n, 3, 5, 6], DType::F32);
    let grads = backward(&mut g, y, dy).unwrap();
    let dx = grads[&x];
    g.mark_output(y);
    g.mark_output(dx);
    (g, [x, dy, y, dx, gamma, beta, rm, rv])
}

#[test]
fn syncbn_on_two_ranks_equals_batchnorm_over_both_batches_in_f64() {
    let n = 8;
    let mut rng = padnet_wgpu::rng::Rng::new(5);
    let x: Vec<f32> = (0..n * 90).map(|i| rng.normal() + (i % 3) as f32).collect();
    let dy: Vec<f32> = (0..n * 90).map(|_| rng.normal()).collect();
    // The whole batch in f64.
    let (gamma_v, beta_v) = ([2.0f32, 3.0, 0.5], [0.3f32, -0.7, 1.0]);
    let (g, [tx, tdy, ty, tdx, gamma, beta, rm, rv]) = bn_graph(n);
    let mut cpu = interp::Values::new(&g);
    let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    cpu.set(tx, f64s(&x));
    cpu.set(tdy, f64s(&dy));
    cpu.set(gamma, f64s(&gamma_v));
    cpu.set(beta, f64s(&beta_v));
    cpu.set(rm, vec![0.0; 3]);
    cpu.set(rv, vec![1.0; 3]);
    interp::run(&g, &mut cpu);
    let whole = |name: &str| -> Vec<f64> {
        let t = g.find(name).unwrap();
        cpu.get(t).to_vec()
    };
    let (dgamma, dbeta) = (
        cpu.get(g.grads[&g.find("gamma").unwrap()]).to_vec(),
        cpu.get(g.grads[&g.find("beta").unwrap()]).to_vec(),
    );
    let (y_all, dx_all) = (cpu.get(ty).to_vec(), cpu.get(tdx).to_vec());

    // Two ranks of n/2 samples each, as threads sharing the adapter.
    let gpu = common::gpu();
    let half = n / 2 * 90;
    let ranks: Vec<_> = Comm::threads(2)
        .into_iter()
        .map(|comm| {
            let (gpu, x, dy) = (gpu.clone(), x.clone(), dy.clone());
            std::thread::spawn(move || {
                let (g, [tx, tdy, ty, tdx, gamma, beta, rm, rv]) = bn_graph(n / 2);
                let store = ParamStore::new(gpu.clone(), &g, 0).unwrap();
                store.write(&g.tensors[gamma].name, &gamma_v).unwrap();
                store.write(&g.tensors[beta].name, &beta_v).unwrap();
                let exe = Executable::compile_ranks(gpu.clone(), g.clone(), &store, 2).unwrap();
                assert!(exe.has_rank_sums());
                let part = comm.rank() * half..(comm.rank() + 1) * half;
                exe.write(tx, &x[part.clone()]).unwrap();
                exe.write(tdy, &dy[part]).unwrap();
                exe.run_ranks(&comm).unwrap();
                gpu.wait().unwrap();
                let read = |t| exe.read(t, &store).unwrap();
                let dgamma = store.read_grad(&g.tensors[gamma].name).unwrap();
                let dbeta = store.read_grad(&g.tensors[beta].name).unwrap();
                let stats = [read(rm), read(rv)];
                (read(ty), read(tdx), dgamma, dbeta, stats)
            })
        })
        .collect();
    let results: Vec<_> = ranks.into_iter().map(|r| r.join().unwrap()).collect();
    let cat = |k: usize| -> Vec<f64> {
        results
            .iter()
            .flat_map(|r| f64s(if k == 0 { &r.0 } else { &r.1 }))
            .collect()
    };
    let tol = common::FWD_TOL;
    let check = |what: &str, got: &[f64], want: &[f64], tol: f64| {
        let e = common::rel_err(got, want);
        assert!(e <= tol, "{what}: relative error {e:.2e} > {tol:.0e}");
    };
    check("y", &cat(0), &y_all, tol);
    check("dx", &cat(1), &dx_all, common::BWD_TOL);
    // dgamma, dbeta stay each rank's own: their sum is the whole batch's.
    let sum = |k: usize| -> Vec<f64> {
        (0..3)
            .map(|c| {
                results
                    .iter()
                    .map(|r| (if k == 0 { &r.2 } else { &r.3 })[c] as f64)
                    .sum()
            })
            .collect()
    };
    check("dgamma", &sum(0), &dgamma, common::BWD_TOL);
    check("dbeta", &sum(1), &dbeta, common::BWD_TOL);
    // Both ranks move the running statistics by the whole batch's.
    for r in &results {
        check("running mean", &f64s(&r.4[0]), &whole("running_mean"), tol);
        check("running var", &f64s(&r.4[1]), &whole("running_var"), tol);
    }
}

/// `mpirun -np 2 padnet-wgpu train ARGS` (OpenMPI; its root refusal lifted for CI, cores
/// shared by both ranks).
#[cfg(feature = "mpi")]
fn mpirun(args: &[&str]) -> Command {
    let mut c = Command::new("mpirun");
    c.env_remove("PADNET_ADAPTER")
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .args(["--oversubscribe", "-np", "2"])
        .arg(env!("CARGO_BIN_EXE_padnet-wgpu"))
        .args(["train", "--quiet"])
        .args(args);
    c
}

#[cfg(feature = "mpi")]
#[test]
fn mpi_ranks_train_as_one_rank_with_twice_the_batch() {
    let (one, two) = (fresh("mpi-1"), fresh("mpi-2"));
    let common = cnn("256");
    ok(&[
        &common[..],
        &["--batch-size", "64", "--out", one.to_str().unwrap()],
    ]
    .concat());
    let out = mpirun(
        &[
            &common[..],
            &["--batch-size", "32", "--out", two.to_str().unwrap()],
        ]
        .concat(),
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same_metrics(&one, &two, 1e-4);
    let _ = std::fs::remove_dir_all(&one);
    let _ = std::fs::remove_dir_all(&two);
}

/// The PIDs of the processes whose command line names `needle` and whose environment holds
/// `var`.
#[cfg(feature = "mpi")]
fn processes_with(needle: &str, var: &str) -> Vec<i32> {
    let mut pids = vec![];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let has = |hay: &[u8], s: &str| hay.windows(s.len()).any(|w| w == s.as_bytes());
        if has(&cmdline, needle) && environ.split(|&b| b == 0).any(|kv| kv == var.as_bytes()) {
            pids.push(pid);
        }
    }
    pids
}

/// Polls `poll` every 100 ms until it gives a value, failing with `what` once `secs` have
/// passed since `since`.
#[cfg(feature = "mpi")]
fn wait_until<T>(
    since: std::time::Instant,
    secs: u64,
    what: &str,
    mut poll: impl FnMut() -> Option<T>,
) -> T {
    loop {
        if let Some(value) = poll() {
            return value;
        }
        assert!(since.elapsed().as_secs() < secs, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[cfg(feature = "mpi")]
#[test]
fn a_killed_mpi_rank_ends_the_job_and_its_checkpoint_resumes_on_one_rank() {
    let run = fresh("mpi-kill");
    let r = run.to_str().unwrap();
    let common = cnn("1024");
    let mut job = mpirun(
        &[
            &common[..],
            &["--batch-size", "32", "--save-every", "2", "--out", r],
        ]
        .concat(),
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // Wait for a committed checkpoint, then kill rank 1.
    let latest = run.join("checkpoints").join("latest");
    let start = std::time::Instant::now();
    wait_until(start, 300, "no checkpoint within 5 minutes", || {
        if latest.exists() {
            return Some(());
        }
        assert!(
            job.try_wait().unwrap().is_none(),
            "the job ended before its first checkpoint"
        );
        None
    });
    let rank1 = processes_with(r, "OMPI_COMM_WORLD_RANK=1");
    assert_eq!(rank1.len(), 1, "one rank-1 process: {rank1:?}");
    let killed = std::time::Instant::now();
    assert_eq!(unsafe { libc::kill(rank1[0], libc::SIGKILL) }, 0);
    // The job ends within seconds, with an error.
    let status = wait_until(
        killed,
        60,
        "the job outlived its killed rank by 60 s",
        || job.try_wait().unwrap(),
    );
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(job.stderr.as_mut().unwrap(), &mut err).unwrap();
    eprintln!(
        "job ended {:.1} s after rank 1 was killed: {}",
        killed.elapsed().as_secs_f64(),
        err.lines().last().unwrap_or("")
    );
    // Every rank is gone within seconds (rank 0 was blocked in a sum with the killed rank).
    wait_until(killed, 30, "a rank outlived the job by 30 s", || {
        processes_with(r, "OMPI_COMM_WORLD_SIZE=2")
            .is_empty()
            .then_some(())
    });
    // A rank whose main thread has exited no longer shows its command line, but its other
    // threads may still hold the run directory's lock for a moment: wait for the lock itself.
    let lock = std::fs::File::open(run.join(".lock")).unwrap();
    wait_until(
        killed,
        30,
        "the run directory stayed locked 30 s after rank 1 was killed",
        || lock.try_lock().ok(),
    );
    drop(lock);
    eprintln!(
        "every rank gone and the run unlocked {:.1} s after rank 1 was killed",
        killed.elapsed().as_secs_f64()
    );
    // The last checkpoint is whole: one rank of the same global batch finishes the epoch.
    ok(&[&common[..], &["--batch-size", "64", "--resume", r]].concat());
    assert_eq!(metrics(&run).len(), 1);
    let _ = std::fs::remove_dir_all(&run);
}
