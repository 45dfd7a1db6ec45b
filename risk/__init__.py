"""Risk: the array backend (CuPy on a GPU, NumPy otherwise), covariance estimation, VaR/CVaR engines."""
