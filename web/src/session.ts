// The token the dashboard uses: taken from `?token=` (the URL vmws serve prints),
// kept in sessionStorage (gone when the tab closes), and removed from the address
// bar so it does not linger in history or get copied along with the URL.

const KEY = "vmws.token";

export function loadToken(win: Window = window): string | null {
  const url = new URL(win.location.href);
  const fromUrl = url.searchParams.get("token");
  if (fromUrl) {
    saveToken(fromUrl, win);
    url.searchParams.delete("token");
    win.history.replaceState(win.history.state, "", url.pathname + url.search + url.hash);
    return fromUrl;
  }
  try {
    return win.sessionStorage.getItem(KEY);
  } catch {
    return null; // storage disabled: the token field asks again
  }
}

export function saveToken(token: string | null, win: Window = window): void {
  try {
    if (token) win.sessionStorage.setItem(KEY, token);
    else win.sessionStorage.removeItem(KEY);
  } catch {
    // Storage disabled: the token lives only in memory for this page.
  }
}
