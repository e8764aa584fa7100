//! Ranks as threads of one process (several adapters in one workstation): a rendezvous per
//! collective under one mutex. Each rank deposits its buffer; the last to arrive sums them in
//! rank order; every rank copies the sum out, and the last to leave opens the next round.
//! A rank that fails aborts the group, so no other waits for it.

use crate::error::Result;
use std::sync::{Condvar, Mutex};

pub struct Group {
    size: usize,
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    /// Each rank's contribution to the current round.
    inputs: Vec<Option<Vec<f32>>>,
    /// The round's sum, once every rank has contributed.
    sum: Option<Vec<f32>>,
    /// Ranks that have taken the sum this round.
    taken: usize,
    /// The first rank that failed, and why.
    aborted: Option<(usize, String)>,
}

impl Group {
    pub fn new(size: usize) -> Group {
        Group {
            size,
            state: Mutex::new(State {
                inputs: vec![None; size],
                sum: None,
                taken: 0,
                aborted: None,
            }),
            changed: Condvar::new(),
        }
    }

    pub fn sum(&self, rank: usize, data: &mut [f32]) -> Result<()> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // Wait until the previous round has been emptied.
        while s.inputs[rank].is_some() || s.sum.is_some() {
            if let Some((r, why)) = &s.aborted {
                return Err(super::peer_failed(*r, why));
            }
            s = self.changed.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        s.inputs[rank] = Some(data.to_vec());
        if s.inputs.iter().all(Option::is_some) {
            let mut total = vec![0.0f32; data.len()];
            for input in s.inputs.iter().flatten() {
                if input.len() != total.len() {
                    let why = "ranks disagree on a collective's length";
                    s.aborted = Some((rank, why.into()));
                    self.changed.notify_all();
                    return Err(super::peer_failed(rank, why));
                }
                for (t, v) in total.iter_mut().zip(input) {
                    *t += v;
                }
            }
            s.sum = Some(total);
            self.changed.notify_all();
        }
        while s.sum.is_none() {
            if let Some((r, why)) = &s.aborted {
                return Err(super::peer_failed(*r, why));
            }
            s = self.changed.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        data.copy_from_slice(s.sum.as_ref().expect("checked above"));
        s.taken += 1;
        if s.taken == self.size {
            s.taken = 0;
            s.sum = None;
            s.inputs.iter_mut().for_each(|i| *i = None);
            self.changed.notify_all();
        }
        Ok(())
    }

    pub fn abort(&self, rank: usize, why: &str) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.aborted.is_none() {
            s.aborted = Some((rank, why.to_string()));
        }
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use crate::dist::Comm;

    #[test]
    fn threads_sum_gather_and_abort() {
        let comms = Comm::threads(3);
        let handles: Vec<_> = comms
            .into_iter()
            .map(|c| {
                std::thread::spawn(move || {
                    let mut out = vec![];
                    for round in 0..50 {
                        let mut v = vec![(c.rank() + 1) as f32 * round as f32, 1.0];
                        c.sum(&mut v).unwrap();
                        out.push(v);
                    }
                    let g = c.gather(&[c.rank() as f32 * 10.0]).unwrap();
                    (c.rank(), out, g)
                })
            })
            .collect();
        for h in handles {
            let (_, out, g) = h.join().unwrap();
            for (round, v) in out.iter().enumerate() {
                assert_eq!(v, &vec![6.0 * round as f32, 3.0]);
            }
            assert_eq!(g, vec![0.0, 10.0, 20.0]);
        }
        // A failed rank releases the others with an error that names it.
        let mut comms = Comm::threads(2);
        let second = comms.pop().unwrap();
        let first = comms.pop().unwrap();
        let waiter = std::thread::spawn(move || first.sum(&mut [1.0]));
        second.abort("out of memory");
        let err = waiter.join().unwrap().unwrap_err().to_string();
        assert!(err.contains("rank 1 stopped (out of memory)"), "{err}");
    }
}
