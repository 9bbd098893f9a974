"""The stages of a ranking job, one module each, in the order ``job`` runs them: ``embed`` → ``score`` →
``rank`` (with ``intervals`` and ``baselines``) → ``subset`` → ``probe`` → ``verdict``.

Embed, score and probe are split into *units* — module-level functions ``fn(runtime, job_id, …)`` that
build their own :class:`~app.services.rankings.inputs.RankingInputs`, write idempotently (upserts keyed by
job/backbone/layer/metric/arm/seed) and return a small JSON-able summary — so the executor can run them
inline or as Ray tasks. The other stages are cheap and run in the job's thread. No stage knows another's
internals: they meet in the database rows and in the plan.
"""
