"""Fine-tuning a base so it can do the task: a causal LM trained to answer with the label
word, and the optimiser every fine-tuning shares."""
