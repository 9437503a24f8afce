//! The llama model's KV cache: per layer one key and one value buffer for every row, written
//! in place. The model's forward (`super`) reads and writes rows' lengths and last tokens; every
//! other user goes through the methods here.

use candle_core::Tensor;

/// Keys and values of every layer: per layer a buffer `[rows, kv_heads, capacity, head_dim]`
/// written in place. Each row is one sequence with its own length — the `n` continuations of
/// one prompt (rows at the same position) or unrelated sequences such as concurrent episodes
/// (rows at their own positions, decoded together by `forward_rows`). Appending copies only
/// the new positions (growing by doubling), not the history as `cat` would.
#[derive(Default)]
pub struct KvCache {
    pub(super) layers: Vec<Option<(Tensor, Tensor)>>,
    /// Valid positions of each row; empty until the first forward fixes the number of rows.
    pub(super) lens: Vec<usize>,
    /// Each row's last token (`None` while empty), kept for models with previous-token
    /// embeddings: the first new token's input needs it.
    pub(super) last: Vec<Option<u32>>,
    pub(super) capacity_hint: usize,
}

impl Clone for KvCache {
    /// A deep copy: buffers are written in place, so clones must not share storage.
    fn clone(&self) -> Self {
        let layers =
            self.layers.iter().map(|l| l.as_ref().and_then(|(k, v)| Some((k.copy().ok()?, v.copy().ok()?)))).collect();
        KvCache { layers, lens: self.lens.clone(), last: self.last.clone(), capacity_hint: self.capacity_hint }
    }
}

impl KvCache {
    pub fn new(n_layer: usize) -> Self {
        KvCache { layers: vec![None; n_layer], lens: Vec::new(), last: Vec::new(), capacity_hint: 256 }
    }
    /// A cache of `rows` independent sequences, all empty.
    pub fn with_rows(n_layer: usize, rows: usize) -> Self {
        KvCache { lens: vec![0; rows], last: vec![None; rows], ..Self::new(n_layer) }
    }
    pub fn rows(&self) -> usize {
        self.lens.len()
    }
    /// Number of positions cached (the longest row).
    pub fn len(&self) -> usize {
        self.lens.iter().copied().max().unwrap_or(0)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Number of positions cached in `row`.
    pub fn row_len(&self, row: usize) -> usize {
        self.lens.get(row).copied().unwrap_or(0)
    }
    /// Forgets `row`'s sequence so the row can hold a new one (its buffer is reused).
    pub fn reset_row(&mut self, row: usize) {
        if let Some(l) = self.lens.get_mut(row) {
            *l = 0;
        }
        if let Some(t) = self.last.get_mut(row) {
            *t = None;
        }
    }
    /// Positions each row's buffer holds now (0 before the first write).
    pub fn capacity(&self) -> usize {
        self.layers.iter().flatten().next().and_then(|(k, _)| k.dim(2).ok()).unwrap_or(0)
    }
    /// Reserve room for this many positions when buffers are first made.
    pub fn reserve(&mut self, positions: usize) {
        self.capacity_hint = self.capacity_hint.max(positions);
    }
    /// A cache of batch 1 repeated `n` times along the batch axis: the shared prefill of `n`
    /// continuations.
    pub fn repeat_batch(&self, n: usize) -> candle_core::Result<KvCache> {
        if self.rows() != 1 {
            candle_core::bail!("repeat_batch needs a cache of one row, this one has {}", self.rows());
        }
        let mut c = self.map_buffers(|t| t.repeat((n, 1, 1, 1)))?;
        c.lens = vec![self.lens[0]; n];
        c.last = vec![self.last[0]; n];
        Ok(c)
    }
    /// Keeps only the batch rows in `rows` (drops finished continuations).
    pub fn select_rows(&self, rows: &[u32]) -> candle_core::Result<KvCache> {
        let mut c = match self.layers.first() {
            Some(Some((k0, _))) => {
                let idx = Tensor::new(rows, k0.device())?;
                self.map_buffers(|t| t.index_select(&idx, 0))?
            }
            _ => self.clone(),
        };
        c.lens = rows.iter().map(|&r| self.row_len(r as usize)).collect();
        c.last = rows.iter().map(|&r| self.last.get(r as usize).copied().flatten()).collect();
        Ok(c)
    }
    /// Copies of `row`'s first `len` positions in every layer, `[1, kv_heads, len, head_dim]`
    /// each: a shared prefix to keep (`prefix_cache`).
    pub fn row_prefix(&self, row: usize, len: usize) -> candle_core::Result<Vec<(Tensor, Tensor)>> {
        if len > self.row_len(row) {
            candle_core::bail!("row {row} holds {} positions, not {len}", self.row_len(row));
        }
        self.layers
            .iter()
            .map(|l| match l {
                // `force_contiguous`: a buffer of just these positions (`copy` would keep the
                // whole buffer, every row at full capacity, behind the narrowed view).
                Some((k, v)) => Ok((
                    k.narrow(0, row, 1)?.narrow(2, 0, len)?.force_contiguous()?,
                    v.narrow(0, row, 1)?.narrow(2, 0, len)?.force_contiguous()?,
                )),
                None => candle_core::bail!("the cache has no buffers yet"),
            })
            .collect()
    }

    /// Fills the empty `row` with a prefix's keys and values (`row_prefix`'s layout); `last`
    /// is the prefix's last token.
    pub fn load_row(&mut self, row: usize, kv: &[(Tensor, Tensor)], last: Option<u32>) -> candle_core::Result<()> {
        if self.row_len(row) != 0 || kv.len() != self.layers.len() {
            candle_core::bail!("load_row needs an empty row and {} layers, got {}", self.layers.len(), kv.len());
        }
        let len = kv.first().map(|(k, _)| k.dim(2)).transpose()?.unwrap_or(0);
        for (layer, (k, v)) in kv.iter().enumerate() {
            self.write(layer, k, v, &[row])?;
        }
        self.advance(&[row], len);
        self.last[row] = last;
        Ok(())
    }

    fn map_buffers(&self, f: impl Fn(&Tensor) -> candle_core::Result<Tensor>) -> candle_core::Result<KvCache> {
        let layers = self
            .layers
            .iter()
            .map(|l| match l {
                Some((k, v)) => Ok(Some((f(k)?, f(v)?))),
                None => Ok(None),
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(KvCache { layers, lens: self.lens.clone(), last: self.last.clone(), capacity_hint: self.capacity_hint })
    }

    /// Writes `k, v` (`[b, kv_heads, s, hd]`) of batch item `i` into row `rows[i]` at that
    /// row's positions `len ..` of `layer` and returns the whole buffers. Lengths are advanced
    /// by `advance` once every layer is written.
    pub(super) fn write(
        &mut self,
        layer: usize,
        k: &Tensor,
        v: &Tensor,
        rows: &[usize],
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let (_, h, s, d) = k.dims4()?;
        let need = rows.iter().map(|&r| self.lens[r] + s).max().unwrap_or(0);
        let slot = &mut self.layers[layer];
        let cap = slot.as_ref().map(|(kb, _)| kb.dim(2)).transpose()?.unwrap_or(0);
        if cap < need {
            let new_cap = need.max(self.capacity_hint).max(2 * cap);
            let keep = self.lens.iter().copied().max().unwrap_or(0);
            let n_rows = self.lens.len();
            let grow = |old: Option<&Tensor>| -> candle_core::Result<Tensor> {
                let buf = Tensor::zeros((n_rows, h, new_cap, d), k.dtype(), k.device())?;
                if let (Some(old), true) = (old, keep > 0) {
                    buf.slice_set(&old.narrow(2, 0, keep)?.contiguous()?, 2, 0)?;
                }
                Ok(buf)
            };
            let (kb, vb) = (grow(slot.as_ref().map(|x| &x.0))?, grow(slot.as_ref().map(|x| &x.1))?);
            *slot = Some((kb, vb));
        }
        let Some((kb, vb)) = slot.as_ref() else { candle_core::bail!("KV cache buffer missing after allocation") };
        let targets: Vec<(usize, usize)> = rows.iter().map(|&r| (r, self.lens[r])).collect();
        kb.inplace_op2(&k.contiguous()?, &WriteRows { targets: &targets })?;
        vb.inplace_op2(&v.contiguous()?, &WriteRows { targets: &targets })?;
        Ok((kb.clone(), vb.clone()))
    }

    pub(super) fn advance(&mut self, rows: &[usize], s: usize) {
        for &r in rows {
            self.lens[r] += s;
        }
    }
}

/// Copies batch item `i` of `src: [b, h, s, d]` into `dst: [rows, h, cap, d]` at row
/// `targets[i].0`, positions `targets[i].1 ..`: appending to a KV cache whose rows sit at
/// different positions, in place.
struct WriteRows<'a> {
    targets: &'a [(usize, usize)],
}

impl candle_core::InplaceOp2 for WriteRows<'_> {
    fn name(&self) -> &'static str {
        "kaizen-kv-write-rows"
    }

    fn cpu_fwd(
        &self,
        dst: &mut candle_core::CpuStorage,
        dl: &candle_core::Layout,
        src: &candle_core::CpuStorage,
        sl: &candle_core::Layout,
    ) -> candle_core::Result<()> {
        use candle_core::CpuStorage::F32;
        let (F32(dst), F32(src)) = (dst, src) else { candle_core::bail!("kv write: f32 only") };
        let (Some((d0, _)), Some((s0, _))) = (dl.contiguous_offsets(), sl.contiguous_offsets()) else {
            candle_core::bail!("kv write: buffers must be contiguous");
        };
        let (rows, h, cap, d) = dl.shape().dims4()?;
        let (b, sh, s, sd) = sl.shape().dims4()?;
        if b != self.targets.len() || sh != h || sd != d {
            candle_core::bail!("kv write: shapes {:?} into {:?}", sl.shape(), dl.shape());
        }
        for (i, &(row, pos)) in self.targets.iter().enumerate() {
            if row >= rows || pos + s > cap {
                candle_core::bail!("kv write: row {row} positions {pos}..{} outside {:?}", pos + s, dl.shape());
            }
            for head in 0..h {
                let from = s0 + (i * h + head) * s * d;
                let to = d0 + ((row * h + head) * cap + pos) * d;
                dst[to..to + s * d].copy_from_slice(&src[from..from + s * d]);
            }
        }
        Ok(())
    }
}
