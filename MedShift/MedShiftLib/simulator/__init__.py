"""The X-ray simulator: a head phantom or a real CT, a cone-beam projector and the five domain renderings.
"""
