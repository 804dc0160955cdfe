"""Subscriber-facing documents: receipt and invoice PDFs, and the WhatsApp texts.

Pure and synchronous: facts in (frozen dataclasses), bytes or text out. No database, no
clock, no event loop, so the renderers are tested on their own and run in worker threads.
`core.services.receipts` gathers the facts from the database and calls them.

- `pdf`: jinja2 + xhtml2pdf with the embedded DejaVu Sans font (Arabic shaped).
- `words`: which language a reader gets, PDF labels, money and date formatting, texts.
- `receipt`: `ReceiptFacts`, the receipt PDF, its WhatsApp caption and template parameters.
- `invoice`: `InvoiceDocumentFacts` and the invoice PDF.
"""
