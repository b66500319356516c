# `cloudsync serve`'s browser test (cloudsync-serve/tests/browser.rs): headless Chromium driven
# through chromedriver (the WebDriver protocol).
need_apt chromium chromium-driver
