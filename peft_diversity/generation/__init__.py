"""Diverse generation: K possibilities in one batched call, and the baseline decoders it is compared with.

Every decoder is a `Decoder` (generation/batch.py: one signature, one batch runner), so an experiment can swap
them by name (see `DECODERS`):

    decoder(model, tokenizer, context=None, *, contexts=None, num_responses=None, template=None, **settings)
        -> Responses            (one `context`)
        -> list[Responses]      (`contexts=[...]`, batched, with a progress bar for long lists)

Decoders: `possibilities` (PoExFT: K prompts differing only in the possibility number, one generate call),
`sampling` (K samples of the plain prompt), `min_p` (the same with min-p filtering), `diverse_beam` (group beam
search with a Hamming diversity penalty, Vijayakumar et al. 2016, implemented here), `listing` (one generation
asked for K numbered responses, parsed) and `iterative` (K sequential calls, each shown the previous responses).

Shared prefix. The K prompts of one context share every token up to the possibility number (the template puts
the possibility sentence last). `possibilities`, `sampling` and `min_p` therefore prefill that prefix once per
context, repeat its KV cache K times and let `generate` compute only the K suffixes. This path is used when the
model returns a cache that can be repeated along the batch (decoder-only transformers with the default dynamic
cache), K > 1 and the shared prefix has at least `MIN_SHARED_PREFIX` tokens; otherwise the plain path (K full
prompts, left-padded, one generate call) is used. Suffixes of different lengths (e.g. #9 vs #10) are padded
between prefix and suffix, masked out; positions come from the attention mask, so both paths compute the same
thing (token-identical under greedy decoding). `Responses.settings["path"]` says which one ran.

Settings shared by the generate-based decoders (keyword arguments): `temperature` (1.0; 0 = greedy),
`top_p`, `top_k`, `min_p`, `repetition_penalty`, `max_new_tokens` (64, per response), `min_new_tokens`,
`seed`, `batch_size` (contexts per call, 8), `progress` (None = automatic), `clean` (True: `clean_response`),
`shared_prefix` (None = automatic, False = plain path); other keywords go to `model.generate` unchanged.
"""

from __future__ import annotations

from peft_diversity.generation.batch import (  # noqa: F401
    DEFAULT_BATCH_SIZE,
    Decoder,
    DecoderRun,
    RunSettings,
)
from peft_diversity.generation.beam import (  # noqa: F401
    DEFAULT_DIVERSITY_PENALTY,
    Hypothesis,
    diverse_beam_search,
    generate_diverse_beam,
    pick_diverse,
)
from peft_diversity.generation.core import (  # noqa: F401
    DEFAULT_MAX_NEW_TOKENS,
    MIN_SHARED_PREFIX,
    SAMPLING_KEYS,
    common_prefix_length,
    decode_rows,
    forward_last,
    generate_kwargs,
    generate_rows,
)
from peft_diversity.generation.decoders import (  # noqa: F401
    DECODERS,
    DEFAULT_MIN_P,
    generate_iterative,
    generate_listing,
    generate_min_p,
    generate_possibilities,
    generate_responses,
    generate_sampling,
    get_decoder,
)
from peft_diversity.generation.inputs import (  # noqa: F401
    DEFAULT_NUM_RESPONSES,
    as_record,
    choose_possibilities,
    encode,
    fit_record,
    model_name,
    model_window,
    resolve_template,
)
from peft_diversity.generation.responses import (  # noqa: F401
    Responses,
    read_responses_jsonl,
    write_responses_jsonl,
)
from peft_diversity.generation.text import (  # noqa: F401
    ROLE_LABELS,
    ListParse,
    clean_for_record,
    clean_response,
    listing_text,
    parse_numbered_list,
    strip_echoes,
)
