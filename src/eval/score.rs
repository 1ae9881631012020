//! Scoring on the engine: the log-likelihood of each choice's continuation (lm-evaluation-
//! harness's way: the context's trailing spaces move to the continuation, the continuation's
//! tokens are what `context + continuation` has past the context's tokens), and greedy
//! generation for generative tasks; per-item results and accuracy with standard errors.

use super::tasks::filters::gsm8k_exact_match;
use super::tasks::{ChoiceItem, Extractors, GenItem};
use crate::backend::with_cpu_f32;
use crate::engine::generate::{generate_queued, GenerateParams};
use crate::engine::sampling::Sampler;
use crate::engine::{Engine, LogitsMode};
use crate::error::{Error, Result};
use crate::model::tokenizer::TextCodec;
use candle_core::{DType, Tensor};
use moecap_kernels::log_sum_exp;
use serde::{Deserialize, Serialize};

/// One scored multiple-choice item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChoiceResult {
    /// Item id.
    pub id: String,
    /// Group (MMLU subject).
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub group: String,
    /// The right choice.
    pub gold: usize,
    /// Log-likelihood of each choice.
    pub loglikelihoods: Vec<f64>,
    /// UTF-8 bytes of each continuation, the leading delimiter included (for `acc_bytes`).
    #[serde(rename = "choice_bytes")]
    pub bytes: Vec<usize>,
    /// Characters of each choice without the leading delimiter (for `acc_norm`).
    #[serde(rename = "choice_chars")]
    pub chars: Vec<usize>,
    /// Choice with the highest log-likelihood.
    pub pred: usize,
    /// Choice with the highest log-likelihood per character of the choice (lm-evaluation-harness's
    /// `acc_norm`: `len(choice)` in characters, without the space before it).
    pub pred_norm: usize,
    /// Choice with the highest log-likelihood per UTF-8 byte of the continuation, the leading space
    /// included (`acc_bytes`).
    #[serde(default)]
    pub pred_bytes: usize,
}

/// The three predictions of a multiple-choice item from its choices' log-likelihoods: the largest
/// log-likelihood; the largest per character of the choice without its leading delimiter (one
/// space: lm-evaluation-harness's `acc_norm`); the largest per byte of the whole continuation
/// (`acc_bytes`). Returns `(pred, pred_norm, pred_bytes, chars, bytes)`.
pub fn predictions(
    ll: &[f64],
    continuations: &[String],
) -> (usize, usize, usize, Vec<usize>, Vec<usize>) {
    let bytes: Vec<usize> = continuations.iter().map(|c| c.len()).collect();
    let chars: Vec<usize> = continuations
        .iter()
        .map(|c| c.strip_prefix(' ').unwrap_or(c).chars().count())
        .collect();
    let per = |n: &[usize]| -> Vec<f64> {
        ll.iter()
            .zip(n)
            .map(|(l, n)| l / (*n).max(1) as f64)
            .collect()
    };
    (
        argmax(ll),
        argmax(&per(&chars)),
        argmax(&per(&bytes)),
        chars,
        bytes,
    )
}

/// One generated answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenResult {
    /// Item id.
    pub id: String,
    /// The reference answer.
    pub answer: String,
    /// Generated text (cut at the first stop string).
    pub output: String,
    /// Strict extraction (`[invalid]` when none).
    pub strict: String,
    /// Flexible extraction (the last number; `[invalid]` when none).
    pub flexible: String,
}

impl GenResult {
    /// Whether the strict answer is right (lm-evaluation-harness's GSM8K `exact_match`).
    pub fn correct_strict(&self) -> bool {
        gsm8k_exact_match(&self.strict, &self.answer)
    }

    /// Whether the flexible answer is right.
    pub fn correct_flexible(&self) -> bool {
        gsm8k_exact_match(&self.flexible, &self.answer)
    }
}

/// Accuracy with its standard error.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// Items.
    pub n: usize,
    /// Fraction right.
    pub value: f64,
    /// Standard error of the mean (sample standard deviation / √n, as lm-evaluation-harness).
    pub stderr: f64,
}

impl Accuracy {
    /// From per-item correctness.
    pub fn of(correct: impl IntoIterator<Item = bool>) -> Accuracy {
        let v: Vec<f64> = correct.into_iter().map(|c| c as u8 as f64).collect();
        let n = v.len();
        if n == 0 {
            return Accuracy {
                n,
                value: 0.0,
                stderr: 0.0,
            };
        }
        let mean = v.iter().sum::<f64>() / n as f64;
        let stderr = if n > 1 {
            (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
                / (n as f64).sqrt()
        } else {
            0.0
        };
        Accuracy {
            n,
            value: mean,
            stderr,
        }
    }
}

fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

/// Context and continuation token ids of one request.
fn encode_pair(codec: &TextCodec, context: &str, continuation: &str) -> Result<(Vec<u32>, usize)> {
    let trimmed = context.trim_end_matches(' ');
    let moved = &context[trimmed.len()..];
    let cont = format!("{moved}{continuation}");
    let whole = codec.encode(&format!("{trimmed}{cont}"))?;
    let ctx = codec.encode(trimmed)?;
    if ctx.len() >= whole.len() {
        return Err(Error::Invalid(format!(
            "the continuation `{continuation}` adds no tokens to its context"
        )));
    }
    Ok((whole, ctx.len()))
}

/// One item's requests: each choice's token ids (context and continuation, lm-evaluation-
/// harness's split) and where its continuation starts; `shared` tokens are common to every
/// choice and lie before every continuation.
struct ItemIds {
    choices: Vec<(Vec<u32>, usize)>,
    shared: usize,
}

impl ItemIds {
    fn new(codec: &TextCodec, it: &ChoiceItem) -> Result<Self> {
        let choices = it
            .choices
            .iter()
            .map(|ch| encode_pair(codec, &it.context, ch))
            .collect::<Result<Vec<_>>>()?;
        let first = &choices[0].0;
        let shared = choices
            .iter()
            .map(|(ids, ctx)| common_prefix(first, ids).min(*ctx))
            .min()
            .unwrap_or(0);
        if shared == 0 {
            return Err(Error::Invalid(format!(
                "item {}: its context is empty, so nothing predicts a choice's first token",
                it.id
            )));
        }
        Ok(ItemIds { choices, shared })
    }
}

/// The shortest context prefix that a step prefills once for all its items.
const MIN_SHARED_PREFIX: usize = 16;

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// `log p(t | row r)` for every target `t` of `targets[r]`, from logits `[rows, V]` in f32: the
/// rows read in place where they are on the host (else copied once), spread over the thread
/// pool, each row's log-sum-exp ([`log_sum_exp`]) computed once.
fn target_logprobs(logits: &Tensor, targets: &[Vec<u32>]) -> Result<Vec<Vec<f64>>> {
    use rayon::prelude::*;
    let (rows, v) = logits.dims2()?;
    if rows != targets.len() {
        return Err(Error::Invalid(format!(
            "{rows} rows of logits for {} rows of targets",
            targets.len()
        )));
    }
    let score = |all: &[f32]| -> Vec<Vec<f64>> {
        all.par_chunks(v.max(1))
            .zip(targets)
            .map(|(row, tg)| {
                let lse = log_sum_exp(row);
                tg.iter().map(|&t| row[t as usize] as f64 - lse).collect()
            })
            .collect()
    };
    let logits = logits.contiguous()?;
    if let Some(out) = with_cpu_f32(&logits, score)? {
        return Ok(out);
    }
    Ok(score(
        &logits
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?,
    ))
}

/// Scores multiple-choice items, `batch` items per step; `sink(engine, results)` hears each
/// step's results as soon as they are known (to write them, with the step's records).
///
/// Nothing is computed twice: a step prefills the context prefix its items share (an MMLU
/// subject's few-shot exemplars) once, each item's own context once on a copy of that cache,
/// and each choice's continuation on a copy of its item's cache; the first continuation token
/// is read from the context's last position, so single-token choices (MMLU's ` A`–` D`) need no
/// pass of their own. Sequences are packed without padding. The log-likelihoods equal those of
/// scoring every `context + continuation` from scratch up to f32 rounding.
pub fn score_choices(
    engine: &mut Engine,
    codec: &TextCodec,
    items: &[ChoiceItem],
    batch: usize,
    sink: &mut dyn FnMut(&mut Engine, &[ChoiceResult]) -> Result<()>,
) -> Result<Vec<ChoiceResult>> {
    let ids = items
        .iter()
        .map(|it| ItemIds::new(codec, it))
        .collect::<Result<Vec<_>>>()?;
    let vocab = engine.model.desc.vocab_size;
    if let Some(bad) = ids
        .iter()
        .flat_map(|i| i.choices.iter().flat_map(|(t, _)| t))
        .find(|&&t| t as usize >= vocab)
    {
        return Err(Error::Invalid(format!(
            "the tokenizer gives id {bad}, outside the model's vocabulary ({vocab})"
        )));
    }
    let mut out = Vec::with_capacity(items.len());
    let step = batch.max(1);
    for (k, chunk) in ids.chunks(step).enumerate() {
        let base = k * step;
        let mut ll: Vec<Vec<f64>> = chunk.iter().map(|i| vec![0.0; i.choices.len()]).collect();
        // 1. the prefix every item of the step shares, leaving each item at least one token
        let head = &chunk[0].choices[0].0;
        let group = if chunk.len() > 1 {
            chunk
                .iter()
                .map(|i| common_prefix(head, &i.choices[0].0[..i.shared]).min(i.shared - 1))
                .min()
                .unwrap_or(0)
        } else {
            0
        };
        // a prefix of a few tokens (ARC's `Question:`) is not worth a pass of its own
        let group = if group >= MIN_SHARED_PREFIX { group } else { 0 };
        let mut root = engine.new_sequence();
        if group > 0 {
            engine.forward(
                &mut [&mut root],
                &[head[..group].to_vec()],
                LogitsMode::Last,
            )?;
        }
        // 2. each item's own context on a copy of the shared cache; its last position predicts
        // every choice's first continuation token
        let mut seqs = chunk
            .iter()
            .map(|i| root.fork(i.shared - group + 1))
            .collect::<Result<Vec<_>>>()?;
        let toks: Vec<Vec<u32>> = chunk
            .iter()
            .map(|i| i.choices[0].0[group..i.shared].to_vec())
            .collect();
        let last = engine.forward(
            &mut seqs.iter_mut().collect::<Vec<_>>(),
            &toks,
            LogitsMode::Last,
        )?;
        // log p of each choice's token at `shared`, from its item's last context row
        let first_lp = last
            .iter()
            .zip(chunk)
            .map(|(row, i)| {
                let tg: Vec<u32> = i.choices.iter().map(|(t, _)| t[i.shared]).collect();
                Ok(target_logprobs(row, &[tg])?.remove(0))
            })
            .collect::<Result<Vec<_>>>()?;
        // 3. each choice's remaining tokens (all but its last) on a copy of its item's cache
        let mut forks = Vec::new();
        let mut fork_toks = Vec::new();
        let mut owner = Vec::new();
        for (j, i) in chunk.iter().enumerate() {
            for (c, (t, _)) in i.choices.iter().enumerate() {
                if t.len() - 1 > i.shared {
                    forks.push(seqs[j].fork(t.len() - 1 - i.shared)?);
                    fork_toks.push(t[i.shared..t.len() - 1].to_vec());
                    owner.push((j, c));
                }
            }
        }
        drop(seqs);
        let rows = if forks.is_empty() {
            Vec::new()
        } else {
            engine.forward(
                &mut forks.iter_mut().collect::<Vec<_>>(),
                &fork_toks,
                LogitsMode::All,
            )?
        };
        // row r of choice c's pass predicts its token at shared + 1 + r
        let mut rest_lp: Vec<Vec<Option<Vec<f64>>>> =
            chunk.iter().map(|i| vec![None; i.choices.len()]).collect();
        for ((j, c), r) in owner.into_iter().zip(&rows) {
            let (t, shared) = (&chunk[j].choices[c].0, chunk[j].shared);
            let tg: Vec<Vec<u32>> = t[shared + 1..].iter().map(|&x| vec![x]).collect();
            let lp = target_logprobs(r, &tg)?.into_iter().map(|v| v[0]).collect();
            rest_lp[j][c] = Some(lp);
        }
        for (j, i) in chunk.iter().enumerate() {
            for (c, (t, ctx)) in i.choices.iter().enumerate() {
                // the prediction of position p comes from position p - 1: the item's last
                // context row for p = shared, else row p - 1 - shared of the choice's own pass
                let mut sum = 0.0;
                for p in *ctx..t.len() {
                    sum += match &rest_lp[j][c] {
                        _ if p == i.shared => first_lp[j][c],
                        Some(lp) => lp[p - 1 - i.shared],
                        None => {
                            return Err(Error::Invalid(format!(
                                "item {}: choice {c} has no scored pass",
                                items[base + j].id
                            )))
                        }
                    };
                }
                ll[j][c] = sum;
            }
        }
        let results: Vec<ChoiceResult> = items[base..base + chunk.len()]
            .iter()
            .zip(ll)
            .map(|(it, ll)| {
                let (pred, pred_norm, pred_bytes, chars, bytes) = predictions(&ll, &it.choices);
                ChoiceResult {
                    id: it.id.clone(),
                    group: it.group.clone(),
                    gold: it.gold,
                    pred,
                    pred_norm,
                    pred_bytes,
                    loglikelihoods: ll,
                    bytes,
                    chars,
                }
            })
            .collect();
        sink(engine, &results)?;
        out.extend(results);
    }
    Ok(out)
}

/// The stop strings of chat-mode generation (the answer may span paragraphs).
pub const CHAT_STOPS: [&str; 2] = ["</s>", "<|im_end|>"];

/// How a task's answers are generated and read.
#[derive(Debug, Clone)]
pub struct Generation<'a> {
    /// Generated tokens at most per answer.
    pub max_new_tokens: usize,
    /// Each answer is cut at the first of these (or the model's end-of-sequence token).
    pub stops: &'a [&'a str],
    /// The answer extractions ([`super::tasks::Task::extractors`]).
    pub extract: Extractors,
}

/// Generates greedy answers as `gen` says, `batch` sequences in flight (a finished answer's slot
/// goes at once to the next prompt), and extracts the strict answer and the flexible one;
/// `sink` hears the results in item order, as soon as each is known.
pub fn generate_answers(
    engine: &mut Engine,
    codec: &TextCodec,
    items: &[GenItem],
    batch: usize,
    gen: &Generation,
    sink: &mut dyn FnMut(&mut Engine, &[GenResult]) -> Result<()>,
) -> Result<Vec<GenResult>> {
    let prompts = items
        .iter()
        .map(|it| codec.encode(&it.prompt))
        .collect::<Result<Vec<_>>>()?;
    let mut params = GenerateParams {
        max_new_tokens: gen.max_new_tokens,
        sampler: Sampler::Greedy,
        eos: engine.model.desc.eos_token_ids.clone(),
        stop: gen.stops.iter().map(|s| s.to_string()).collect(),
    };
    // answers finish out of order; the sink hears them in item order, as soon as every
    // earlier item has finished
    let mut finished: Vec<Option<GenResult>> = items.iter().map(|_| None).collect();
    let mut out: Vec<GenResult> = Vec::with_capacity(items.len());
    generate_queued(
        engine,
        &prompts,
        batch,
        &mut params,
        Some(codec),
        &mut |e, i, g| {
            let it = &items[i];
            let text = g.text.unwrap_or_default();
            finished[i] = Some(GenResult {
                id: it.id.clone(),
                answer: it.answer.clone(),
                strict: gen.extract.strict(&text),
                flexible: gen.extract.flexible(&text),
                output: text,
            });
            let ready: Vec<GenResult> = finished[out.len()..]
                .iter_mut()
                .map_while(Option::take)
                .collect();
            if !ready.is_empty() {
                sink(e, &ready)?;
                out.extend(ready);
            }
            Ok(())
        },
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acc_norm_counts_characters_without_the_delimiter_and_acc_bytes_utf8_bytes() {
        // " 90°C": 6 bytes with the space, 4 characters without it; " 1000": 5 bytes, 4 characters.
        let choices = [" 90°C".to_string(), " 1000".to_string()];
        let ll = [-3.0, -2.6];
        // per character: -0.75 vs -0.65 -> 1; per byte: -0.5 vs -0.52 -> 0; raw: 1
        assert_eq!(
            predictions(&ll, &choices),
            (1, 1, 0, vec![4, 4], vec![6, 5])
        );
        // Per character the first wins when its log-likelihood per character is larger.
        let ll = [-2.0, -2.6];
        assert_eq!(predictions(&ll, &choices).1, 0);
        // A continuation without a leading space counts every character; an empty one counts 1.
        let (_, _, _, chars, bytes) =
            predictions(&[-1.0, -1.0], &["AB".to_string(), " ".to_string()]);
        assert_eq!((chars, bytes), (vec![2, 0], vec![2, 1]));
    }

    #[test]
    fn accuracy_and_stderr_by_hand() {
        // 3 of 4 right: mean 0.75, sample variance (3·0.0625 + 0.5625)/3 = 0.25, stderr 0.5/2
        let a = Accuracy::of([true, true, false, true]);
        assert_eq!((a.n, a.value), (4, 0.75));
        assert!((a.stderr - 0.25).abs() < 1e-12);
        assert_eq!(Accuracy::of([]).n, 0);
        assert_eq!(argmax(&[-3.0, -1.0, -2.0]), 1);
    }
}
