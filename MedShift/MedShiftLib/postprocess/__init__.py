"""Before and after the flow: contrast transfer, noise matching and the noise power spectra they use.
"""
