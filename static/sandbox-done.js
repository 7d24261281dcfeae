// The sandbox's pop-up closes itself once the details are sent; the portal learns the result from its server.
// It ships inside the portal's script bundle (cached already), so it acts only on that page.
if (window.opener && document.querySelector("#sandbox-done[data-close-window]")) window.close();
