"""Strategy: leakage-free features, the model and its registry, mean-variance portfolio construction, the
daily rebalance and SHAP explanations of every order (docs/strategy.md)."""
