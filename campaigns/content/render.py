"""Rendering a campaign: compile and inline once per run, then one cheap render per client."""

from __future__ import annotations

from dataclasses import dataclass

from jinja2 import TemplateNotFound
from markdown_it import MarkdownIt

from campaigns.config import Settings
from campaigns.content.articles import Article, load_article, resolve_articles
from campaigns.content.context import (
    CampaignView,
    ClientView,
    ClinicView,
    ServiceNames,
    VisitView,
    campaign_view,
    clinic_view,
)
from campaigns.content.inlining import LAYOUT, InliningLoader, document_inliner, inline_fragment
from campaigns.content.plaintext import html_to_text, markdown_to_text
from campaigns.content.templating import (
    describe_template_error,
    make_environment,
    search_path,
    template_loader,
    view_attributes,
)
from campaigns.errors import TemplateError

ARTICLE_TEMPLATE = "article"
TEMPLATE_VIEWS = view_attributes(ClientView, VisitView, ClinicView, CampaignView, Article)


@dataclass(frozen=True)
class Rendered:
    """One client's email content, ready to become a MIME message."""

    subject: str
    html: str
    text: str


class CampaignRenderer:
    """A campaign's templates, articles and subject, prepared once for a whole run.

    Jinja parses and compiles each template once; the layout's CSS is inlined
    into the template sources once (see ``campaigns.content.inlining``) and into each
    article once; per client only Jinja's compiled code runs.
    """

    def __init__(self, settings: Settings, name: str) -> None:
        campaign = settings.campaigns[name]
        self.name, self.marketing = name, campaign.marketing
        self.folders = search_path(settings.templates)
        plain_loader = template_loader(settings.templates)
        self._loader = InliningLoader(plain_loader)
        self._environment = make_environment(self._loader, TEMPLATE_VIEWS)
        self._plain = make_environment(
            plain_loader, TEMPLATE_VIEWS
        )  # renders again to locate an error exactly
        self._services = ServiceNames(settings.services)
        self._base_context = {
            "clinic": clinic_view(settings.clinic),
            "booking_url": settings.clinic.booking_url,
            "campaign": campaign_view(name, campaign),
        }
        template = campaign.template or ARTICLE_TEMPLATE
        self._html_name, self._text_name = f"{template}.html.j2", f"{template}.txt.j2"
        self._html = self._load(self._html_name)
        self._text = self._load_optional(self._text_name)  # else derived from the HTML
        self._subject = self._compile_subject(campaign.subject)
        self.articles = self._load_articles(campaign.articles) if campaign.articles else []
        self._after_render = None
        if self._loader.needs_inlining_after_render:  # the layout's CSS, whose <style> is gone
            self._after_render = document_inliner(self._loader.css(self._environment))

    def render(
        self,
        client: ClientView,
        last_visit: VisitView | None,
        next_visit: VisitView | None,
        unsubscribe_url: str | None = None,
        article: Article | None = None,
    ) -> Rendered:
        context = {
            **self._base_context,
            "client": client,
            "last_visit": self._services.visit(last_visit),
            "next_visit": self._services.visit(next_visit),
        }
        if self.marketing:
            context["unsubscribe_url"] = unsubscribe_url or ""
        if article is not None:
            context["article"] = article
        html = self._run(self._html_name, context, self._html)
        if self._after_render is not None:
            html = self._after_render.inline(html)
        if self._text is None:
            text = html_to_text(html)
        else:
            text = self._run(self._text_name, context, self._text)
        return Rendered(self._render_subject(context, article), html, text)

    # -- preparing ----------------------------------------------------------

    def _load(self, name: str):
        try:
            self._environment.get_template(LAYOUT)
            return self._environment.get_template(name)
        except TemplateNotFound as error:
            raise TemplateError(
                f"campaigns.{self.name}: template {error.name!r} not found in "
                f"{' or '.join(str(folder) for folder in self.folders)}"
            ) from None
        except Exception as error:  # a syntax error: name the file and line
            raise describe_template_error(error, f"campaigns.{self.name}") from None

    def _load_optional(self, name: str):
        """The template, or None when no folder has one by that name."""
        try:
            self._loader.get_source(self._environment, name)
        except TemplateNotFound:
            return None
        return self._load(name)

    def _compile_subject(self, source: str | None):
        if source is None:
            return None
        try:
            return self._environment.from_string(source)
        except Exception as error:
            raise TemplateError(
                f"campaigns.{self.name}.subject: {describe_template_error(error, 'subject')}"
            ) from None

    def _load_articles(self, setting: str | list[str]) -> list[Article]:
        names = resolve_articles(setting, self.folders)
        if not names:
            raise TemplateError(f"campaigns.{self.name}.articles: {setting!r} matches no article")
        markdown = MarkdownIt("commonmark", {"html": False, "typographer": True})
        markdown.enable(["replacements", "smartquotes"])
        css = self._loader.css(self._environment)

        def render(body: str) -> tuple[str, str]:
            tokens = markdown.parse(body)  # once: the HTML and the text say the same
            html = markdown.renderer.render(tokens, markdown.options, {})
            return inline_fragment(html, css), markdown_to_text(tokens)

        return [load_article(name, self.folders, render) for name in names]

    # -- rendering ----------------------------------------------------------

    def _run(self, name: str, context: dict, template=None) -> str:
        try:
            return (template or self._environment.get_template(name)).render(context)
        except Exception as error:
            raise self._locate(name, context, error) from None

    def _locate(self, name: str, context: dict, error: Exception) -> TemplateError:
        """Render the un-inlined source again: its traceback names the file's real line."""
        try:
            self._plain.get_template(name).render(context)
        except Exception as plain_error:
            return describe_template_error(plain_error, f"campaigns.{self.name}")
        return TemplateError(f"campaigns.{self.name}: {name}: {error}")

    def _render_subject(self, context: dict, article: Article | None) -> str:
        if self._subject is None:
            subject = article.title if article else self.name
        else:
            try:
                subject = self._subject.render(context)
            except Exception as error:
                problem = describe_template_error(error, "subject")
                raise TemplateError(f"campaigns.{self.name}.subject: {problem}") from None
        return " ".join(subject.split())  # one line, whatever the data held
