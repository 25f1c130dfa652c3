"""Item classes: how an upstream item becomes EAS ApplicationData.

One module per class (MS-ASCMD Class values): ``email`` now; Calendar,
Contacts, Tasks and Notes come with the CalDAV/CardDAV drivers. ``options``
holds what the classes share: the Options of Sync and ItemOperations
(FilterType, BodyPreference, MIMESupport).
"""
