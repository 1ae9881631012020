//! Generation: prompts prefilled together, then decode steps over the sequences still running,
//! stopping each on EOS (unless ignored), a stop string or after `max_new_tokens`; with times to
//! first token and per-token times. [`generate`] runs one batch start to end;
//! [`generate_queued`] keeps a number of slots busy, the next prompt taking a finished
//! sequence's slot.

use super::run::{Engine, LogitsMode, Sequence};
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

/// Runs generation for a batch of prompts: all of them prefilled in one pass, then decoded
/// together; outputs in prompt order.
pub fn generate(
    engine: &mut Engine,
    prompts: &[Vec<u32>],
    params: &mut GenerateParams,
    codec: Option<&TextCodec>,
) -> Result<Vec<SeqOutput>> {
    let mut outputs: Vec<Option<SeqOutput>> = prompts.iter().map(|_| None).collect();
    generate_queued(
        engine,
        prompts,
        prompts.len(),
        params,
        codec,
        &mut |_, i, o| {
            outputs[i] = Some(o);
            Ok(())
        },
    )?;
    Ok(outputs.into_iter().flatten().collect())
}

/// Generation with at most `slots` sequences in flight: the first `slots` prompts are
/// prefilled in one pass, and whenever sequences finish, the next prompts take their slots
/// (prefilled together in one pass) while the others continue, so that the decode steps keep
/// `slots` sequences busy to the end of the queue (continuous batching). `done(engine, i,
/// output)` hears prompt `i`'s output as soon as it finishes, in finishing order. A
/// sequence's tokens do not depend on the others it shares passes with. Each output's
/// `ttft_s` counts from the start of the call.
pub fn generate_queued(
    engine: &mut Engine,
    prompts: &[Vec<u32>],
    slots: usize,
    params: &mut GenerateParams,
    codec: Option<&TextCodec>,
    done: &mut dyn FnMut(&mut Engine, usize, SeqOutput) -> Result<()>,
) -> Result<()> {
    let start = Instant::now();
    let fresh = |p: &Vec<u32>| SeqOutput {
        prompt_tokens: p.len(),
        generated_ids: Vec::new(),
        finish: Finish::Length,
        ttft_s: 0.0,
        token_times_s: Vec::new(),
        text: None,
    };
    if params.max_new_tokens == 0 {
        for (i, p) in prompts.iter().enumerate() {
            done(engine, i, fresh(p))?;
        }
        return Ok(());
    }
    // the sequences in flight: (prompt index, its cache, its output so far)
    let mut flight: Vec<(usize, Sequence, SeqOutput)> = Vec::new();
    let mut queued = 0;
    let slots = slots.max(1);
    loop {
        // 1. free slots to the next prompts, prefilled in one pass
        let admit = (slots - flight.len()).min(prompts.len() - queued);
        let mut stepped = Vec::new();
        if admit > 0 {
            let range = queued..queued + admit;
            queued += admit;
            let mut seqs: Vec<Sequence> = range.clone().map(|_| engine.new_sequence()).collect();
            let mut refs: Vec<_> = seqs.iter_mut().collect();
            let logits = engine.forward(&mut refs, &prompts[range.clone()], LogitsMode::Last)?;
            let ttft = start.elapsed().as_secs_f64();
            for ((i, seq), l) in range.zip(seqs).zip(&logits) {
                let mut o = fresh(&prompts[i]);
                o.ttft_s = ttft;
                o.generated_ids
                    .push(params.sampler.sample(&l.squeeze(0)?.to_vec1::<f32>()?));
                stepped.push((i, seq, o));
            }
        } else if flight.is_empty() {
            return Ok(());
        } else {
            // 2. one decode step of every sequence in flight
            let step = Instant::now();
            let tokens: Vec<Vec<u32>> = flight
                .iter()
                .map(|(_, _, o)| vec![*o.generated_ids.last().unwrap_or(&0)])
                .collect();
            let mut refs: Vec<_> = flight.iter_mut().map(|(_, s, _)| s).collect();
            let logits = engine.forward(&mut refs, &tokens, LogitsMode::Last)?;
            let dt = step.elapsed().as_secs_f64();
            for ((i, seq, mut o), l) in flight.drain(..).zip(&logits) {
                o.generated_ids
                    .push(params.sampler.sample(&l.squeeze(0)?.to_vec1::<f32>()?));
                o.token_times_s.push(dt);
                stepped.push((i, seq, o));
            }
        }
        // 3. finished sequences leave (and free their caches), the others stay in flight
        for (i, seq, mut o) in stepped {
            let tok = *o.generated_ids.last().unwrap_or(&0);
            if stopped(params, codec, &mut o, tok)?
                || o.generated_ids.len() >= params.max_new_tokens
            {
                drop(seq);
                if let Some(c) = codec {
                    let text = c.decode(&o.generated_ids)?;
                    o.text = Some(
                        cut_at_stop(&text, &params.stop)
                            .unwrap_or(&text)
                            .to_string(),
                    );
                }
                done(engine, i, o)?;
            } else {
                flight.push((i, seq, o));
            }
        }
    }
}

/// Whether `tok`, just appended to `o`, ends the sequence (EOS, or a stop string in its text),
/// recording why in `o.finish`.
fn stopped(
    params: &GenerateParams,
    codec: Option<&TextCodec>,
    o: &mut SeqOutput,
    tok: u32,
) -> Result<bool> {
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
}
