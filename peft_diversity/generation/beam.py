"""Diverse (group) beam search with a Hamming diversity penalty (Vijayakumar et al. 2016), implemented here
because transformers 5 moved group beam search out of core."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch

from peft_diversity.errors import GenerationError
from peft_diversity.generation.batch import Decoder, DecoderRun, RunSettings
from peft_diversity.generation.core import DEFAULT_MAX_NEW_TOKENS, decode_rows, forward_last, model_device
from peft_diversity.generation.responses import Responses
from peft_diversity.shared_prefix import expand_cache

logger = logging.getLogger(__name__)

DEFAULT_DIVERSITY_PENALTY = 1.0


# ----- diverse beam search ---------------------------------------------------------------------------------
@dataclass
class Hypothesis:
    """A finished beam: generated tokens (without the end token) and its length-normalised score."""

    tokens: list[int]
    score: float


def diverse_beam_search(
    model: Any,
    prompt_ids: Sequence[int],
    *,
    num_beams: int,
    num_beam_groups: int,
    diversity_penalty: float = DEFAULT_DIVERSITY_PENALTY,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    min_new_tokens: int = 0,
    length_penalty: float = 1.0,
    eos_token_id: int | Sequence[int] = (),
    use_cache: bool = True,
) -> list[list[Hypothesis]]:
    """Group beam search with Hamming diversity (Vijayakumar et al. 2016) for one prompt; best-first per group.

    The beams are split into `num_beam_groups` groups of `num_beams // num_beam_groups`. At every step the
    groups choose in turn; group g's log-probabilities are lowered by `diversity_penalty` x (how many beams of
    groups 0..g-1 chose that token at this step), and the penalised scores accumulate into its beam scores.
    Within a group it is ordinary beam search: the top (1 + #eos) x beams candidates; an end token among the
    top `beams` finishes a hypothesis, scored sum-log-prob / length**length_penalty (length counts the end
    token). A group stops once it has `beams` finished hypotheses none of which its best running beam can
    still beat; at `max_new_tokens` the running beams are finished as they are. The model runs one forward per
    step over all beams, reusing its KV cache (reordered by beam) when it returns one, else the full sequences.
    """
    if num_beam_groups < 1 or num_beams < num_beam_groups or num_beams % num_beam_groups:
        raise GenerationError(
            f"num_beams={num_beams} must be a positive multiple of num_beam_groups={num_beam_groups}"
        )
    eos_ids = [int(e) for e in ([eos_token_id] if isinstance(eos_token_id, int) else eos_token_id)]
    state = _BeamState(num_beams, num_beam_groups, length_penalty, model_device(model))
    ids = torch.tensor([list(prompt_ids)], dtype=torch.long, device=state.device)
    logits, cache = forward_last(model, ids, torch.ones_like(ids), use_cache=use_cache)
    beams = torch.zeros(num_beams, dtype=torch.long, device=state.device)
    if not (hasattr(cache, "reorder_cache") and expand_cache(cache, beams)):
        cache = None
    logits = logits.expand(num_beams, -1)
    for step in range(max_new_tokens):
        logp = torch.log_softmax(logits.float(), dim=-1)
        if step < min_new_tokens and eos_ids:
            logp[:, eos_ids] = -math.inf
        beam_idx, tokens = state.step(logp, diversity_penalty, eos_ids)
        if state.all_done() or step + 1 == max_new_tokens:
            break
        logits, cache = _beam_forward(model, ids, state, beam_idx, tokens, cache, use_cache)
    return state.finish()


def _beam_forward(
    model: Any,
    prompt: torch.Tensor,
    state: _BeamState,
    beam_idx: torch.Tensor,
    tokens: torch.Tensor,
    cache: Any,
    use_cache: bool,
) -> tuple[torch.Tensor, Any]:
    """Logits for the next step: feed only the new tokens when a cache is kept, else the full sequences."""
    if cache is not None:
        cache.reorder_cache(beam_idx)
        length = prompt.shape[1] + state.sequences.shape[1]
        mask = torch.ones((len(tokens), length), dtype=torch.long, device=state.device)
        return forward_last(model, tokens[:, None], mask, cache=cache, use_cache=True)
    full = torch.cat([prompt.expand(len(tokens), -1), state.sequences], dim=1)
    logits, _ = forward_last(model, full, torch.ones_like(full), use_cache=False)
    return logits, None


class _BeamState:
    """Running beams, their scores and the finished hypotheses of every group."""

    def __init__(self, num_beams: int, num_groups: int, length_penalty: float, device: torch.device) -> None:
        self.groups, self.per_group = num_groups, num_beams // num_groups
        self.length_penalty, self.device = length_penalty, device
        # Only the first beam of each group is live at the start: the copies would pick the same tokens.
        self.scores = torch.full((num_beams,), -1e9, device=device)
        self.scores[:: self.per_group] = 0.0
        self.sequences = torch.empty((num_beams, 0), dtype=torch.long, device=device)
        self.hypotheses: list[list[Hypothesis]] = [[] for _ in range(num_groups)]
        self.done = [False] * num_groups

    def step(
        self, logp: torch.Tensor, penalty: float, eos_ids: list[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Choose every group's next beams in turn; returns (source beam per row, new token per row)."""
        beam_idx = torch.arange(len(self.scores), device=self.device)
        tokens = torch.zeros(len(self.scores), dtype=torch.long, device=self.device)
        new_scores = self.scores.clone()
        counts = torch.zeros(logp.shape[-1], device=self.device)
        for group in range(self.groups):
            if self.done[group]:
                continue
            rows = slice(group * self.per_group, (group + 1) * self.per_group)
            scores = logp[rows] + self.scores[rows, None] - penalty * counts
            self._select(group, scores, eos_ids, beam_idx, tokens, new_scores)
            counts += torch.bincount(tokens[rows], minlength=logp.shape[-1]).to(counts.dtype)
            best_running = new_scores[rows].max().item()
            self.done[group] = self._group_done(group, best_running, self.sequences.shape[1] + 1)
        self.scores = new_scores
        self.sequences = torch.cat([self.sequences[beam_idx], tokens[:, None]], dim=1)
        return beam_idx, tokens

    def _select(
        self,
        group: int,
        scores: torch.Tensor,
        eos_ids: list[int],
        beam_idx: torch.Tensor,
        tokens: torch.Tensor,
        new_scores: torch.Tensor,
    ) -> None:
        """Beam search within one group: fill its rows of beam_idx/tokens/new_scores in place."""
        vocab, width = scores.shape[-1], self.per_group
        top_scores, top_flat = scores.reshape(-1).topk(min(width * (1 + len(eos_ids)), scores.numel()))
        filled, length = 0, self.sequences.shape[1] + 1
        for rank, (score, flat) in enumerate(zip(top_scores.tolist(), top_flat.tolist(), strict=True)):
            beam, token = divmod(flat, vocab)
            source = group * width + beam
            if token in eos_ids:
                if rank < width:
                    self._add(group, self.sequences[source].tolist(), score, length)
                continue
            row = group * width + filled
            beam_idx[row], tokens[row], new_scores[row] = source, token, score
            filled += 1
            if filled == width:
                break

    def _add(self, group: int, tokens: list[int], score: float, length: int) -> None:
        hyps = self.hypotheses[group]
        hyps.append(Hypothesis(tokens, score / length**self.length_penalty))
        hyps.sort(key=lambda h: h.score, reverse=True)
        del hyps[self.per_group :]

    def _group_done(self, group: int, best_running: float, length: int) -> bool:
        hyps = self.hypotheses[group]
        return len(hyps) >= self.per_group and hyps[-1].score >= best_running / length**self.length_penalty

    def all_done(self) -> bool:
        return all(self.done)

    def finish(self) -> list[list[Hypothesis]]:
        """Finish the running beams of the groups still open; each group's hypotheses, best first."""
        length = self.sequences.shape[1]
        for group in range(self.groups):
            if self.done[group]:
                continue
            for row in range(group * self.per_group, (group + 1) * self.per_group):
                self._add(group, self.sequences[row].tolist(), self.scores[row].item(), max(length, 1))
        return self.hypotheses


def pick_diverse(hypotheses: list[list[Hypothesis]], count: int) -> list[Hypothesis]:
    """K hypotheses taking each group's best in turn (group 0's best, group 1's best, ..., then second bests)."""
    picked: list[Hypothesis] = []
    for rank in range(max((len(h) for h in hypotheses), default=0)):
        picked += [group[rank] for group in hypotheses if rank < len(group)]
    return picked[:count]


@dataclass
class DiverseBeamOptions:
    """None: K (num_responses)."""

    num_beams: int | None = None
    num_beam_groups: int | None = None
    diversity_penalty: float = DEFAULT_DIVERSITY_PENALTY
    length_penalty: float = 1.0


class DiverseBeam(Decoder):
    """Baseline: diverse (group) beam search on the plain prompt, one context at a time.

    Defaults: K groups of one beam each (`num_beams = num_beam_groups = K`), one response per group. Sampling
    settings do not apply; `max_new_tokens`, `min_new_tokens` and `seed` do.
    """

    name = "diverse_beam"
    Options = DiverseBeamOptions

    def generate_settings(self, options: Any, count: int | None, settings: dict[str, Any]) -> dict[str, Any]:
        if self._beams(options, count) < count:
            raise GenerationError(
                f"num_beams={self._beams(options, count)} cannot return num_responses={count} responses"
            )
        unknown = set(settings) - {"max_new_tokens", "min_new_tokens", *(f.name for f in fields(RunSettings))}
        if unknown:
            raise GenerationError(f"diverse_beam does not take {sorted(unknown)}")
        return {**settings, "temperature": 0.0}

    @staticmethod
    def _beams(options: DiverseBeamOptions, count: int) -> int:
        return options.num_beams or options.num_beam_groups or count

    def recorded(self, run: DecoderRun) -> dict[str, Any]:
        options = run.options
        return {
            "num_beams": self._beams(options, run.count),
            "num_beam_groups": options.num_beam_groups or run.count,
            "diversity_penalty": options.diversity_penalty,
            "length_penalty": options.length_penalty,
        }

    def batch(self, run: DecoderRun, batch: list[Any]) -> list[Responses]:
        """One beam search per context (each timed on its own)."""
        options, results = run.options, []
        for record in batch:
            start = time.perf_counter()
            hyps = diverse_beam_search(
                run.model,
                run.plain_prompt(record),
                num_beams=self._beams(options, run.count),
                num_beam_groups=options.num_beam_groups or run.count,
                diversity_penalty=options.diversity_penalty,
                max_new_tokens=run.gen_kwargs["max_new_tokens"],
                min_new_tokens=run.gen_kwargs.get("min_new_tokens") or 0,
                length_penalty=options.length_penalty,
                eos_token_id=run.eos_ids,
            )
            texts, counts = decode_rows(
                run.tokenizer, [h.tokens for h in pick_diverse(hyps, run.count)], run.eos_ids
            )
            results.append(self.respond(run, record, texts, counts, time.perf_counter() - start))
        return results


generate_diverse_beam = DiverseBeam()
