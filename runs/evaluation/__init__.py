"""The evaluator: per-tool checks of each successful step result, giving a pass / warn / fail verdict."""
