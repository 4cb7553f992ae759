BXJ¶Ì
AdV
AË?×ä+¿VpOÀ