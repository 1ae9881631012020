//! The one router of every MoE family: scores (softmax or sigmoid) from the gate logits, an
//! optional selection-only bias, optional group-limited selection, top-k, optional
//! renormalisation and a scaling factor. Computed on the host in f32, as the references do. The
//! family's rules come from the descriptor ([`crate::model::descriptor::RouterRules`]).

use crate::model::descriptor::{GroupScore, Moe, Scoring};

/// How a MoE block turns router logits into expert ids and combine weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Router {
    /// Score function.
    pub scoring: Scoring,
    /// Experts per token.
    pub top_k: usize,
    /// Renormalise the chosen weights.
    pub norm_topk_prob: bool,
    /// Added to the sum before renormalising (DeepSeek adds 1e-20).
    pub renorm_eps: f32,
    /// Factor on the combine weights.
    pub scaling: f32,
    /// Apply `scaling` only when not renormalising (DeepSeek-V2's rule).
    pub scale_only_unnormalised: bool,
    /// Expert groups (1 = none).
    pub n_group: usize,
    /// Groups kept per token.
    pub topk_group: usize,
    /// Group score = sum of the group's two best scores (`noaux_tc`) instead of its best.
    pub group_by_top2_sum: bool,
    /// Selection-only bias per expert.
    pub bias: Option<Vec<f32>>,
}

impl Router {
    /// The router of a MoE block, as its descriptor's rules say; `bias` is the selection-only
    /// correction bias where the block has one.
    pub fn for_block(m: &Moe, bias: Option<Vec<f32>>) -> Self {
        let r = &m.router;
        Router {
            scoring: r.scoring,
            top_k: m.top_k,
            norm_topk_prob: r.rules.renormalise,
            renorm_eps: r.rules.renorm_eps,
            scaling: r.routed_scaling_factor as f32,
            scale_only_unnormalised: r.rules.scale_only_unnormalised,
            n_group: r.n_group.max(1),
            topk_group: r.topk_group,
            group_by_top2_sum: r.rules.group_score == GroupScore::TopTwoSum,
            bias,
        }
    }

    /// Routes one token: expert ids (best first) and their combine weights.
    pub fn route(&self, logits: &[f32]) -> (Vec<u32>, Vec<f32>) {
        let e = logits.len();
        let scores: Vec<f32> = match self.scoring {
            Scoring::Softmax => {
                let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let ex: Vec<f32> = logits.iter().map(|&x| (x - max).exp()).collect();
                let sum: f32 = ex.iter().sum();
                ex.iter().map(|x| x / sum).collect()
            }
            Scoring::Sigmoid => logits.iter().map(|&x| 1.0 / (1.0 + (-x).exp())).collect(),
        };
        let mut choice: Vec<f32> = match &self.bias {
            Some(b) => scores.iter().zip(b).map(|(s, b)| s + b).collect(),
            None => scores.clone(),
        };
        if self.n_group > 1 {
            let per = e / self.n_group;
            let group_score: Vec<f32> = (0..self.n_group)
                .map(|g| {
                    let mut v: Vec<f32> = choice[g * per..(g + 1) * per].to_vec();
                    v.sort_by(|a, b| b.total_cmp(a));
                    if self.group_by_top2_sum {
                        v.iter().take(2).sum()
                    } else {
                        v[0]
                    }
                })
                .collect();
            let keep = top_indices(&group_score, self.topk_group);
            // DeepSeek-V2 (softmax, always positive) masks dropped groups with 0.0; V3's
            // `noaux_tc` masks them with −∞, which matters once a negative bias is added.
            let dropped = if self.group_by_top2_sum {
                f32::NEG_INFINITY
            } else {
                0.0
            };
            for g in 0..self.n_group {
                if !keep.contains(&g) {
                    for c in &mut choice[g * per..(g + 1) * per] {
                        *c = dropped;
                    }
                }
            }
        }
        let ids = top_indices(&choice, self.top_k);
        let mut w: Vec<f32> = ids.iter().map(|&i| scores[i]).collect();
        if self.norm_topk_prob {
            let sum: f32 = w.iter().sum::<f32>() + self.renorm_eps;
            for x in &mut w {
                *x /= sum;
            }
        }
        if !(self.scale_only_unnormalised && self.norm_topk_prob) {
            for x in &mut w {
                *x *= self.scaling;
            }
        }
        (ids.into_iter().map(|i| i as u32).collect(), w)
    }
}

/// Indices of the `k` largest values, largest first; ties go to the lower index.
pub fn top_indices(v: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(scoring: Scoring, k: usize, norm: bool) -> Router {
        Router {
            scoring,
            top_k: k,
            norm_topk_prob: norm,
            renorm_eps: 0.0,
            scaling: 1.0,
            scale_only_unnormalised: false,
            n_group: 1,
            topk_group: 1,
            group_by_top2_sum: false,
            bias: None,
        }
    }

    #[test]
    fn softmax_top2_renormalised_by_hand() {
        // softmax of [0, ln 2, ln 3, ln 4] = [0.1, 0.2, 0.3, 0.4]
        let l = [0.0, 2f32.ln(), 3f32.ln(), 4f32.ln()];
        let (ids, w) = router(Scoring::Softmax, 2, true).route(&l);
        assert_eq!(ids, vec![3, 2]);
        assert!((w[0] - 4.0 / 7.0).abs() < 1e-6 && (w[1] - 3.0 / 7.0).abs() < 1e-6);
        let (_, w) = router(Scoring::Softmax, 2, false).route(&l);
        assert!((w[0] - 0.4).abs() < 1e-6 && (w[1] - 0.3).abs() < 1e-6);
    }

    #[test]
    fn sigmoid_bias_selects_but_does_not_weigh() {
        let mut r = router(Scoring::Sigmoid, 1, false);
        r.bias = Some(vec![0.0, 0.0, 1.0]);
        r.scaling = 2.5;
        let (ids, w) = r.route(&[2.0, 1.0, 0.0]);
        // sigmoid(0) + 1 = 1.5 beats sigmoid(2) = 0.881
        assert_eq!(ids, vec![2]);
        assert!((w[0] - 0.5 * 2.5).abs() < 1e-6);
    }

    #[test]
    fn group_limited_selection_and_ties() {
        let mut r = router(Scoring::Sigmoid, 2, false);
        r.n_group = 2;
        r.topk_group = 1;
        // group 0 = {0,1}: best 0.70, top-2 sum 1.30; group 1 = {2,3}: best 0.75, sum 0.80
        let logit = |p: f32| (p / (1.0 - p)).ln();
        let l = [logit(0.7), logit(0.6), logit(0.75), logit(0.05)];
        let (ids, _) = r.route(&l);
        assert_eq!(ids, vec![2, 3]); // by best score: group 1
        r.group_by_top2_sum = true;
        let (ids, _) = r.route(&l);
        assert_eq!(ids, vec![0, 1]); // by top-2 sum: group 0
                                     // equal group scores: the lower group wins
        let l = [logit(0.6), logit(0.5), logit(0.6), logit(0.5)];
        r.group_by_top2_sum = false;
        assert_eq!(r.route(&l).0, vec![0, 1]);
        assert_eq!(top_indices(&[1.0, 3.0, 3.0], 2), vec![1, 2]);
    }

    #[test]
    fn noaux_tc_drops_groups_below_any_biased_score() {
        // DeepSeek-V3: sigmoid, a negative correction bias on every expert, 2 groups of 2,
        // keep 1 group, top-2, renormalised (1e-20), scaled by 2.5.
        let mut r = router(Scoring::Sigmoid, 2, true);
        r.n_group = 2;
        r.topk_group = 1;
        r.group_by_top2_sum = true;
        r.renorm_eps = 1e-20;
        r.scaling = 2.5;
        r.bias = Some(vec![-1.0, -1.0, -1.0, -1.0]);
        let logit = |p: f32| (p / (1.0 - p)).ln();
        // choice scores: -0.2, -0.3 (sum -0.5, kept) and -0.6, -0.9 (sum -1.5, dropped)
        let l = [logit(0.8), logit(0.7), logit(0.4), logit(0.1)];
        let (ids, w) = r.route(&l);
        assert_eq!(ids, vec![0, 1], "a dropped group masked with 0.0 would win");
        // weights from the unbiased scores: 0.8 and 0.7 over 1.5, times 2.5
        assert!((w[0] - 0.8 / 1.5 * 2.5).abs() < 1e-6 && (w[1] - 0.7 / 1.5 * 2.5).abs() < 1e-6);
    }

    #[test]
    fn deepseek_v2_scales_only_unnormalised() {
        let mut r = router(Scoring::Softmax, 2, false);
        r.scaling = 16.0;
        r.scale_only_unnormalised = true;
        let l = [0.0, 2f32.ln(), 3f32.ln(), 4f32.ln()];
        let (_, w) = r.route(&l);
        assert!((w[0] - 0.4 * 16.0).abs() < 1e-5);
        r.norm_topk_prob = true;
        let (_, w) = r.route(&l);
        assert!((w[0] - 4.0 / 7.0).abs() < 1e-6);
    }
}
