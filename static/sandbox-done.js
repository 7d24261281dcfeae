// The sandbox's pop-up closes itself once the details are sent; the portal learns the result from its server.
if (window.opener) window.close();
