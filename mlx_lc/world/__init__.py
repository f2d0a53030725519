"""A synthetic benchmark world that mirrors the paper's on a laptop CPU.

A hidden Frame (who meets whom, to do what, where, when, plus rejected alternatives and small talk)
is realised as an everyday English dialogue, a one-sentence summary, the next reply, their Spanish,
French and German translations and four English tones. Every gold answer, compositional ones
included, is exact, and `judge` checks any output's facts, language and tone against the frame.

    frame = make_frame(0)
    dialogue(frame, random.Random(0))           # "Anna: Hi Tom! ..."
    summary(frame, "es"); reply(frame, tone="witty")
    judge(frame, "summarize+es", model_output)  # {"pass": ..., "facts": {...}, ...}
    build_benchmark(Path("world"), seed=0)      # JSONL sets + corpus.txt
"""

from .dataset import build_benchmark, corpus_documents, make_example
from .frames import Frame, make_frame, sample_frame
from .judge import detect_language, detect_tone, judge, judge_summary
from .realise import cut_last_turn, dialogue, plan_dialogue, render, reply, sentence, summary

__all__ = ["Frame", "make_frame", "sample_frame", "dialogue", "cut_last_turn", "plan_dialogue", "render",
           "summary", "reply", "sentence", "judge", "judge_summary", "detect_language", "detect_tone",
           "build_benchmark", "make_example", "corpus_documents"]
