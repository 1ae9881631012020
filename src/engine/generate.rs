//! Generation: one prefill pass over all prompts, then decode steps over the sequences still
//! running, stopping each on EOS (unless ignored) or after `max_new_tokens`; with times to
//! first token and per-token times.

use super::run::{Engine, LogitsMode};
use super::sampling::Sampler;
use crate::error::Result;
use crate::model::tokenizer::{cut_at_stop, TextCodec};
use serde::Serialize;
use std::time::Instant;

/// Generation settings.
#[derive(Debug, Clone)]
pub struct GenerateParams {
    /// Tokens to generate per sequence at most.
    pub max_new_tokens: usize,
    /// Token choice.
    pub sampler: Sampler,
    /// Tokens that end a sequence (ignored when empty).
    pub eos: Vec<u32>,
    /// Strings that end a sequence (need `codec`).
    pub stop: Vec<String>,
}

/// Why a sequence stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Finish {
    /// It produced an end-of-sequence token.
    Eos,
    /// It reached `max_new_tokens`.
    Length,
    /// Its text reached a stop string.
    Stop,
}

/// One sequence's result.
#[derive(Debug, Clone, Serialize)]
pub struct SeqOutput {
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Generated token ids (the EOS token included when it ended the sequence).
    pub generated_ids: Vec<u32>,
    /// Why it stopped.
    pub finish: Finish,
    /// Seconds from the start to the first generated token.
    pub ttft_s: f64,
    /// Seconds each later token took (the decode step that produced it).
    pub token_times_s: Vec<f64>,
    /// The generated text (cut before a stop string), when a tokenizer is available.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// Runs generation for a batch of prompts.
pub fn generate(
    engine: &mut Engine,
    prompts: &[Vec<u32>],
    params: &mut GenerateParams,
    codec: Option<&TextCodec>,
) -> Result<Vec<SeqOutput>> {
    let start = Instant::now();
    let mut seqs: Vec<_> = prompts.iter().map(|_| engine.new_sequence()).collect();
    let mut outputs: Vec<SeqOutput> = prompts
        .iter()
        .map(|p| SeqOutput {
            prompt_tokens: p.len(),
            generated_ids: Vec::new(),
            finish: Finish::Length,
            ttft_s: 0.0,
            token_times_s: Vec::new(),
            text: None,
        })
        .collect();
    // Whether a sequence's newest token ends it.
    let stopped = |o: &mut SeqOutput, tok: u32| -> Result<bool> {
        if params.eos.contains(&tok) {
            o.finish = Finish::Eos;
            return Ok(true);
        }
        if let (Some(c), false) = (codec, params.stop.is_empty()) {
            if cut_at_stop(&c.decode(&o.generated_ids)?, &params.stop).is_some() {
                o.finish = Finish::Stop;
                return Ok(true);
            }
        }
        Ok(false)
    };
    if params.max_new_tokens == 0 {
        return Ok(outputs);
    }
    let mut refs: Vec<_> = seqs.iter_mut().collect();
    let logits = engine.forward(&mut refs, prompts, LogitsMode::Last)?;
    let ttft = start.elapsed().as_secs_f64();
    let mut active = Vec::new();
    for (i, l) in logits.iter().enumerate() {
        let tok = params.sampler.sample(&l.squeeze(0)?.to_vec1::<f32>()?);
        let o = &mut outputs[i];
        o.ttft_s = ttft;
        o.generated_ids.push(tok);
        if !stopped(o, tok)? && o.generated_ids.len() < params.max_new_tokens {
            active.push(i);
        }
    }
    while !active.is_empty() {
        let step = Instant::now();
        let tokens: Vec<Vec<u32>> = active
            .iter()
            .map(|&i| vec![*outputs[i].generated_ids.last().unwrap_or(&0)])
            .collect();
        let mut refs: Vec<_> = seqs
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| active.contains(i))
            .map(|(_, s)| s)
            .collect();
        let logits = engine.forward(&mut refs, &tokens, LogitsMode::Last)?;
        let dt = step.elapsed().as_secs_f64();
        let mut next = Vec::with_capacity(active.len());
        for (&i, l) in active.iter().zip(&logits) {
            let tok = params.sampler.sample(&l.squeeze(0)?.to_vec1::<f32>()?);
            let o = &mut outputs[i];
            o.generated_ids.push(tok);
            o.token_times_s.push(dt);
            if !stopped(o, tok)? && o.generated_ids.len() < params.max_new_tokens {
                next.push(i);
            }
        }
        active = next;
    }
    if let Some(c) = codec {
        for o in &mut outputs {
            let text = c.decode(&o.generated_ids)?;
            o.text = Some(
                cut_at_stop(&text, &params.stop)
                    .unwrap_or(&text)
                    .to_string(),
            );
        }
    }
    Ok(outputs)
}
