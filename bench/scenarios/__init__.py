"""One module per scenario of issue 8. Each ``run(ctx)`` adds its measurements to ``ctx.results`` and
stops every process it started; a scenario that cannot run records why under ``ctx.results["skipped"]``."""
